"""Bars into the event log as batch events and back (real nats-server): batching, deterministic
ids that dedup a re-ingest, only new bars appended, and the log as a data source."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from autoopt.builtins.log_source import EventLogSource, parse_uri
from autoopt.builtins.sources import BundledSource
from autoopt.errors import DataError
from autoopt.log import EventLog
from autoopt.pipeline.ingest import bar_batches, ingest_bars, last_stored_ts, stored_bars
from autoopt.pipeline.retrain import load_bars
from autoopt.plugins import load_plugins

MIN = 60_000_000_000


def _bars(n: int, start: int = 0) -> pl.DataFrame:
    i = np.arange(start, start + n)
    c = 100 + np.sin(i / 50)
    return pl.DataFrame({"ts": i.astype(np.int64) * MIN, "open": c, "high": c + 0.1,
                         "low": c - 0.1, "close": c, "volume": (i % 5).astype(np.float64)})


def test_batches_have_fixed_size_and_ids_derived_from_the_range() -> None:
    bars = _bars(25_000)
    batches = bar_batches("BTC/USDT", "1m", bars, batch_rows=10_000)
    assert [b.n_bars for b in batches] == [10_000, 10_000, 5_000]
    again = bar_batches("BTC/USDT", "1m", bars, batch_rows=10_000)
    assert [b.event_id for b in batches] == [b.event_id for b in again]
    other = bar_batches("ETH/USDT", "1m", bars, batch_rows=10_000)
    assert not {b.event_id for b in batches} & {b.event_id for b in other}
    assert np.array_equal(batches[2].arrays()["close"], bars["close"].to_numpy()[20_000:])


async def test_reingest_appends_only_new_bars_and_duplicates_are_dropped(
    event_log: EventLog,
) -> None:
    assert await ingest_bars(event_log, "SYM", "1m", _bars(2500), batch_rows=1000) == 2500
    last = await last_stored_ts(event_log, "SYM", "1m")
    assert last == 2499 * MIN
    # the same file grown by 500 bars: only the tail goes in
    assert await ingest_bars(event_log, "SYM", "1m", _bars(3000), batch_rows=1000,
                             last_ts=last) == 500
    # a retried append of already-stored batches is deduplicated by its derived id
    results = await event_log.append_many(bar_batches("SYM", "1m", _bars(2500), batch_rows=1000))
    assert all(r.duplicate for r in results)
    stored = await stored_bars(event_log, "SYM", "1m")
    assert stored is not None
    assert stored.equals(_bars(3000))


async def test_file_bars_are_ingested_once_and_the_log_source_reads_them_back(
    event_log: EventLog,
) -> None:
    bundled = BundledSource()
    first = await load_bars(bundled, "bundled:GOOG", None, event_log, batch_rows=1000)
    again = await load_bars(bundled, "bundled:GOOG", None, event_log, batch_rows=1000)
    assert first["GOOG"][1] == again["GOOG"][1] == "1d"
    info = {s.name: s.messages for s in await event_log.info()}
    assert info["MARKET"] == 3  # 2148 bars in batches of 1000, stored once
    from_log = await load_bars(EventLogSource(), "log:GOOG", None, event_log, batch_rows=1000)
    assert from_log["GOOG"][0].equals(first["GOOG"][0])


async def test_the_log_source_names_a_symbol_it_has_no_bars_for(event_log: EventLog) -> None:
    with pytest.raises(DataError, match="NOPE: the event log holds no bars"):
        await EventLogSource().aload("log:NOPE", None, event_log)


def test_log_uris_and_plugin_registration() -> None:
    assert parse_uri("log:EURUSD,GOOG@1h") == (["EURUSD", "GOOG"], "1h")
    assert parse_uri("log:") == ([], None)
    plugins = load_plugins()
    assert plugins.data_source_for("log:GOOG").name == "log"
    assert plugins.data_source_for("ccxt:binance:BTC/USDT:1m").name == "ccxt"
