"""Bars in and out of the event log, as `BarBatch` events.

* Ingested bars are cut into batches of ``batch_rows`` rows, one event each, so replay is not
  bound by per-message cost (1 year of 1-minute bars is ~53 events).
* A batch's event id is derived from (symbol, timeframe, first ts, last ts, rows): appending the
  same range again, e.g. a retried ingest, is dropped by JetStream's dedup.
* Only bars newer than the last stored one are appended (`new_bars`), so nightly re-ingests of a
  growing file or exchange history add just the new tail, and stay correct beyond the dedup
  window.
* Nothing is appended before it passed validation (`autoopt.data.validate_bars` with the
  config's data policy): a bar that fails a reject rule never reaches the log, and what a repair
  changed is what gets stored.
* Reading back (`stored_bars`) concatenates a symbol's batches of one timeframe in log order and
  runs the same validation layer; out-of-order batches and repeated timestamps (an overlapping
  re-ingest) are repaired there, keeping the last copy, and reported, not fixed silently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import numpy as np
import polars as pl

from autoopt.clock import Clock
from autoopt.data import ValidationPolicy, validate_bars
from autoopt.errors import DataError
from autoopt.events import BarBatch
from autoopt.ids import derived_event_id
from autoopt.subjects import subject_filter_for_type

if TYPE_CHECKING:
    from autoopt.log import EventLog

BAR_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


def batch_event_id(symbol: str, timeframe: str, first_ts: int, last_ts: int, rows: int) -> str:
    """Deterministic id of a bar batch (same range, same id, in every process)."""
    return derived_event_id(f"market.bars/{symbol}/{timeframe}", f"{first_ts}-{last_ts}-{rows}")


def bar_batches(
    symbol: str,
    timeframe: str,
    bars: pl.DataFrame,
    *,
    source: str = "",
    batch_rows: int = 10_000,
    clock: Clock | None = None,
) -> list[BarBatch]:
    """Cut a symbol's bars (ts, open, high, low, close, volume) into batch events."""
    if batch_rows < 1:
        raise DataError(f"bar_batches: batch_rows must be >= 1, got {batch_rows}")
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise DataError(f"{symbol}: bars lack columns {missing}")
    out: list[BarBatch] = []
    for start in range(0, bars.height, batch_rows):
        part = bars.slice(start, batch_rows)
        ts = part["ts"].to_numpy().astype(np.int64)
        eid = batch_event_id(symbol, timeframe, int(ts[0]), int(ts[-1]), int(ts.size))
        out.append(
            BarBatch.from_arrays(
                symbol=symbol,
                timeframe=timeframe,
                ts=ts,
                **{c: part[c].to_numpy().astype(np.float64) for c in BAR_COLUMNS[1:]},
                source=source,
                event_id=eid,
                clock=clock,
            )
        )
    return out


def new_bars(bars: pl.DataFrame, last_stored_ts: int | None) -> pl.DataFrame:
    """The bars strictly after the last stored one (all of them when nothing is stored)."""
    if last_stored_ts is None:
        return bars
    return bars.filter(pl.col("ts") > last_stored_ts)


async def _replayed(
    log: EventLog, symbol: str, timeframe: str | None
) -> pl.DataFrame | None:
    """A symbol's stored bars in log order, as stored (None when there are none)."""
    parts: list[pl.DataFrame] = []
    frames: set[str] = set()
    async for event in log.replay(subject_filter_for_type(BarBatch, symbol)):
        if not isinstance(event, BarBatch) or event.n_bars == 0:
            continue
        if timeframe is not None and event.timeframe != timeframe:
            continue
        frames.add(event.timeframe)
        parts.append(event.to_polars())
    if not parts:
        return None
    if len(frames) > 1:
        raise DataError(
            f"{symbol}: the log holds bars of several timeframes {sorted(frames)}; name one"
        )
    return pl.concat(parts)


async def stored_bars(
    log: EventLog,
    symbol: str,
    timeframe: str | None = None,
    policy: ValidationPolicy | None = None,
) -> pl.DataFrame | None:
    """Every stored bar of ``symbol`` (of one timeframe, if given), validated; None if none.

    The order rules (``unsorted``, ``duplicate_ts``) always repair here, since that is the log's
    read contract (the last copy of a timestamp wins), and they are reported like any repair.
    """
    raw = await _replayed(log, symbol, timeframe)
    if raw is None:
        return None
    policy = msgspec.structs.replace(policy or ValidationPolicy(), unsorted="repair",
                                     duplicate_ts="repair")
    clean, _ = validate_bars(raw, symbol, policy)
    return clean


async def last_stored_ts(log: EventLog, symbol: str, timeframe: str | None = None) -> int | None:
    """Timestamp of the newest stored bar of ``symbol`` (None when the log holds none)."""
    raw = await _replayed(log, symbol, timeframe)
    return None if raw is None else int(raw["ts"].max())  # type: ignore[arg-type]


async def ingest_bars(
    log: EventLog,
    symbol: str,
    timeframe: str,
    bars: pl.DataFrame,
    *,
    source: str = "",
    batch_rows: int = 10_000,
    last_ts: int | None = None,
    clock: Clock | None = None,
    policy: ValidationPolicy | None = None,
) -> int:
    """Validate ``bars`` (DataError before anything is appended), then append the clean bars
    newer than ``last_ts`` as batch events; returns how many bars were new."""
    if bars.height == 0:
        return 0
    clean, _ = validate_bars(bars, symbol, policy)
    fresh = new_bars(clean, last_ts)
    if fresh.height == 0:
        return 0
    events = bar_batches(
        symbol, timeframe, fresh, source=source, batch_rows=batch_rows, clock=clock
    )
    await log.append_many(events)
    return fresh.height


__all__ = [
    "bar_batches",
    "batch_event_id",
    "ingest_bars",
    "last_stored_ts",
    "new_bars",
    "stored_bars",
]
