"""Exchange bars through ccxt: ``ccxt:<exchange>:<SYMBOL>[,<SYMBOL>...]:<timeframe>``.

Examples: ``ccxt:binance:BTC/USDT:1m``, ``ccxt:kraken:BTC/USD,ETH/USD:1h``. A symbol may hold
``:`` (``BTC/USDT:USDT`` perpetuals): the exchange is the first field, the timeframe the last.

Why it is built this way:

* **Pagination**: exchanges return at most a page of candles per call (often fewer than the
  ``limit`` asked), so `fetch` walks forward with ``since`` = last candle + one bar until a page
  comes back empty or reaches the present; pages may overlap and are de-duplicated.
* **Rate limits**: calls are spaced at least ``exchange.rateLimit`` ms apart; a
  ``RateLimitExceeded``/``DDoSProtection`` or any other ``NetworkError`` is retried with
  exponential backoff (never less than the rate limit), up to ``max_retries``; then a
  `DataError` names the exchange, symbol and ``since``. Other ccxt errors fail at once.
* **Resumable**: `load_since` starts after the last bar the event log already holds (the
  pipeline passes it), so a nightly run only fetches the new tail. Without stored bars it
  starts ``history_days`` back (config ``pipeline.history_days``).
* The bar still forming (``ts + timeframe > now``) is never returned.
* Every symbol named in the URI or asked for passes `autoopt.symbols.validate_symbol`; the
  bars themselves are judged by the one validation layer when the pipeline ingests them
  (`autoopt.pipeline.ingest.ingest_bars`), before anything is appended.

The exchange object comes from ``exchange_factory(exchange_id)``; by default the ccxt class of
that name with ccxt's own rate limiter on. Tests inject a local exchange with the same
``fetch_ohlcv`` contract; everything else is the real code path.

ccxt itself (about 0.7 s to import) is imported where an exchange is called, not when the
plugin registers the source: only a process that fetches from an exchange pays for it. It comes
with the ``exchanges`` extra; without it, using the source is one `PluginError` line naming it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from autoopt.config import Config
from autoopt.errors import DataError, PluginError
from autoopt.plugins import hookimpl
from autoopt.symbols import validate_symbol

DAY_MS = 86_400_000
_SCHEMA = {
    "ts": pl.Int64, "open": pl.Float64, "high": pl.Float64, "low": pl.Float64,
    "close": pl.Float64, "volume": pl.Float64,
}


@dataclass(frozen=True)
class CcxtSpec:
    exchange: str
    symbols: tuple[str, ...]
    timeframe: str


def parse_uri(uri: str) -> CcxtSpec:
    """Split ``ccxt:<exchange>:<SYMBOLS>:<timeframe>``; DataError naming what is wrong."""
    parts = uri.split(":")
    if len(parts) < 4 or parts[0] != "ccxt" or not parts[1] or not parts[-1]:
        raise DataError(
            f"{uri!r}: expected ccxt:<exchange>:<SYMBOL>[,<SYMBOL>...]:<timeframe>, "
            "e.g. ccxt:binance:BTC/USDT:1m"
        )
    symbols = tuple(s.strip() for s in ":".join(parts[2:-1]).split(",") if s.strip())
    if not symbols:
        raise DataError(f"{uri!r}: no symbol between the exchange and the timeframe")
    for s in symbols:
        validate_symbol(s, "symbol")
    return CcxtSpec(parts[1], symbols, parts[-1])


INSTALL = "pip install 'autoopt[exchanges]'"


def import_ccxt() -> Any:
    """The ccxt module, or one PluginError line naming the extra that provides it."""
    try:
        import ccxt
    except ImportError as exc:
        raise PluginError(
            f"the ccxt data source needs ccxt, which cannot be imported ({exc}): "
            f"install it with {INSTALL}"
        ) from None
    return ccxt


def default_exchange(exchange_id: str) -> Any:
    """The ccxt exchange class of that id, with ccxt's rate limiter enabled."""
    ccxt = import_ccxt()

    cls = getattr(ccxt, exchange_id, None)
    if exchange_id not in ccxt.exchanges or cls is None:
        raise DataError(f"unknown ccxt exchange {exchange_id!r}")
    return cls({"enableRateLimit": True})


class CcxtSource:
    """OHLCV from a ccxt exchange, paginated, rate-limited, retried and resumable."""

    name = "ccxt"
    scheme = "ccxt"

    def __init__(
        self,
        exchange_factory: Callable[[str], Any] = default_exchange,
        *,
        page_limit: int = 1000,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        history_days: int = 365,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.exchange_factory = exchange_factory
        self.page_limit = page_limit
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.history_days = history_days
        self._sleep = sleep
        self._monotonic = monotonic
        self._now_ms = now_ms
        self._last_call: float | None = None
        self._exchanges: dict[str, Any] = {}

    # ----------------------------------------------------------------- DataSource

    def timeframe(self, uri: str) -> str:
        return parse_uri(uri).timeframe

    def symbols_of(self, uri: str) -> list[str]:
        return list(parse_uri(uri).symbols)

    def load(self, uri: str, symbols: Sequence[str] | None = None) -> dict[str, pl.DataFrame]:
        return self.load_since(uri, symbols, {})

    def load_since(
        self, uri: str, symbols: Sequence[str] | None, since: Mapping[str, int]
    ) -> dict[str, pl.DataFrame]:
        """Bars per symbol with ``ts >= since[symbol]`` (ns); ``history_days`` back if absent."""
        spec = parse_uri(uri)
        names = [validate_symbol(s, "symbol") for s in (symbols or spec.symbols)]
        exchange = self.exchange(spec.exchange)
        out = {}
        for symbol in names:
            start_ns = since.get(symbol)
            start_ms = (
                -(-start_ns // 1_000_000) if start_ns is not None
                else self._now_ms() - self.history_days * DAY_MS
            )
            out[symbol] = self.fetch(exchange, symbol, spec.timeframe, start_ms)
        return out

    # ----------------------------------------------------------------- fetching

    def exchange(self, exchange_id: str) -> Any:
        if exchange_id not in self._exchanges:
            self._exchanges[exchange_id] = self.exchange_factory(exchange_id)
        return self._exchanges[exchange_id]

    def fetch(self, exchange: Any, symbol: str, timeframe: str, since_ms: int) -> pl.DataFrame:
        """Every complete bar from ``since_ms`` (inclusive) to now, paginated."""
        try:
            step_ms = int(exchange.parse_timeframe(timeframe)) * 1000
        except Exception as exc:
            raise DataError(f"{exchange.id}: unknown timeframe {timeframe!r}: {exc}") from exc
        rows: dict[int, list[float]] = {}
        cursor = int(since_ms) + (-int(since_ms)) % step_ms  # the first bar open at/after since
        while True:
            now = self._now_ms()
            page = self._call(exchange, symbol, timeframe, cursor)
            fresh = [r for r in page if int(r[0]) >= cursor and int(r[0]) + step_ms <= now]
            for r in fresh:
                rows[int(r[0])] = [float(x) if x is not None else float("nan") for x in r[1:6]]
            if not fresh:
                break
            last = max(int(r[0]) for r in fresh)
            if last + 2 * step_ms > now:
                break  # reached the present: the next bar is still forming
            cursor = last + step_ms
        ts = sorted(rows)
        cols = list(zip(*(rows[t] for t in ts), strict=True)) if ts else [[]] * 5
        return pl.DataFrame(
            {"ts": [t * 1_000_000 for t in ts], "open": cols[0], "high": cols[1],
             "low": cols[2], "close": cols[3], "volume": cols[4]},
            schema=_SCHEMA,
        )

    def _pace(self, exchange: Any) -> None:
        """Keep calls at least ``exchange.rateLimit`` ms apart."""
        gap = float(getattr(exchange, "rateLimit", 0) or 0) / 1000.0
        if self._last_call is not None and gap > 0:
            wait = self._last_call + gap - self._monotonic()
            if wait > 0:
                self._sleep(wait)
        self._last_call = self._monotonic()

    def _call(self, exchange: Any, symbol: str, timeframe: str, since_ms: int) -> list[list[Any]]:
        ccxt = import_ccxt()

        floor = float(getattr(exchange, "rateLimit", 0) or 0) / 1000.0
        for attempt in range(self.max_retries + 1):
            self._pace(exchange)
            try:
                return list(exchange.fetch_ohlcv(symbol, timeframe, since=since_ms,
                                                 limit=self.page_limit))
            except ccxt.NetworkError as exc:  # incl. RateLimitExceeded, DDoSProtection, timeouts
                if attempt == self.max_retries:
                    raise DataError(
                        f"{exchange.id} {symbol} {timeframe}: fetch_ohlcv since={since_ms} failed "
                        f"after {attempt + 1} attempts: {type(exc).__name__}: {exc}"
                    ) from exc
                wait = self.backoff_s * 2**attempt
                if isinstance(exc, ccxt.DDoSProtection):
                    wait = max(wait, floor * 2 ** (attempt + 1))
                self._sleep(wait)
            except ccxt.BaseError as exc:
                raise DataError(
                    f"{exchange.id} {symbol} {timeframe}: fetch_ohlcv since={since_ms}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        raise AssertionError("unreachable")


_SOURCE = CcxtSource()


@hookimpl
def autoopt_configure(config: Config) -> None:
    _SOURCE.history_days = config.pipeline.history_days


@hookimpl
def autoopt_register_data_sources() -> list[object]:
    return [_SOURCE]
