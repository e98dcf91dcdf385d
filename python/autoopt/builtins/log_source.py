"""Bars already in the event log: ``log:[<SYMBOL>[,<SYMBOL>...]][@<timeframe>]``.

Replays the ``BarBatch`` events of each symbol (``autoopt.market.bars.<symbol>``) and joins
them into one frame, then runs the one validation layer on it (`autoopt.pipeline.ingest.
stored_bars` with the config's data policy): batches out of order and repeated timestamps are
put right (sorted, last copy kept) and reported as ``unsorted`` / ``duplicate_ts`` repairs, never
fixed silently; any other rule acts as the policy says. ``@1m`` picks a timeframe when a symbol
has bars of several. Every symbol asked for passes `autoopt.symbols.validate_symbol`. This is how a retrain runs on what earlier ingests stored, without
touching the original files or exchange again.

Inside the pipeline (a running event loop with an open log) `aload` is used; `load` opens its
own connection from the config given to `autoopt_configure` (for scripts and tools).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import polars as pl

from autoopt.config import Config, load_config
from autoopt.data import ValidationPolicy
from autoopt.errors import DataError
from autoopt.pipeline.ingest import stored_bars
from autoopt.plugins import hookimpl
from autoopt.symbols import validate_symbol


def parse_uri(uri: str) -> tuple[list[str], str | None]:
    """(symbols, timeframe) of a ``log:`` URI."""
    if not uri.startswith("log:") and uri != "log":
        raise DataError(f"{uri!r}: expected log:[SYMBOL,...][@timeframe]")
    spec = uri.split(":", 1)[1] if ":" in uri else ""
    timeframe = None
    if "@" in spec:
        spec, timeframe = spec.rsplit("@", 1)
        if not timeframe:
            raise DataError(f"{uri!r}: empty timeframe after '@'")
    return [validate_symbol(s.strip(), "symbol") for s in spec.split(",") if s.strip()], timeframe


class EventLogSource:
    """Bars from the event log's ``BarBatch`` events."""

    name = "log"
    scheme = "log"

    def __init__(self) -> None:
        self.config: Config | None = None

    async def aload(
        self, uri: str, symbols: Sequence[str] | None, log: Any
    ) -> dict[str, pl.DataFrame]:
        named, timeframe = parse_uri(uri)
        wanted = [validate_symbol(s, "symbol") for s in symbols] if symbols else named
        if not wanted:
            raise DataError(f"{uri!r}: name the symbols (log:EURUSD,GOOG or --symbols)")
        out: dict[str, pl.DataFrame] = {}
        for symbol in wanted:
            bars = await stored_bars(log, symbol, timeframe, self.policy())
            if bars is None:
                raise DataError(
                    f"{symbol}: the event log holds no bars"
                    + (f" of timeframe {timeframe}" if timeframe else "")
                    + " (ingest some first, e.g. autoopt retrain --source file:...)"
                )
            out[symbol] = bars
        return out

    def policy(self) -> ValidationPolicy:
        """The config's data policy (defaults when no config was given)."""
        if self.config is None:
            return ValidationPolicy()
        return ValidationPolicy.from_config(self.config.pipeline.data_policy)

    def load(self, uri: str, symbols: Sequence[str] | None = None) -> dict[str, pl.DataFrame]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise DataError("EventLogSource.load called inside an event loop; await aload()")
        return asyncio.run(self._load(uri, symbols))

    async def _load(self, uri: str, symbols: Sequence[str] | None) -> dict[str, pl.DataFrame]:
        from autoopt.runtime import open_event_log

        log = await open_event_log(self.config or load_config())
        try:
            return await self.aload(uri, symbols, log)
        finally:
            await log.close()


_SOURCE = EventLogSource()


@hookimpl
def autoopt_configure(config: Config) -> None:
    _SOURCE.config = config


@hookimpl
def autoopt_register_data_sources() -> list[object]:
    return [_SOURCE]
