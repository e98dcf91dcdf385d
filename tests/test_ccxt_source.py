"""The ccxt source against a local exchange with ccxt's fetch_ohlcv contract (no network here):
pagination, rate-limit pacing, retries with backoff, and resuming from the last stored bar."""

from __future__ import annotations

import ccxt
import numpy as np
import pytest

from autoopt.builtins.ccxt_source import CcxtSource, parse_uri
from autoopt.clock import SimulatedClock
from autoopt.errors import DataError
from autoopt.log import EventLog
from autoopt.pipeline.ingest import stored_bars
from autoopt.pipeline.retrain import load_bars

MIN_MS = 60_000
T0 = 1_700_000_000_000 - (1_700_000_000_000 % MIN_MS)


class FakeClock:
    """Time that only moves when the source sleeps (so pacing is checked without waiting)."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def monotonic(self) -> float:
        return self.t


class FakeExchange(ccxt.Exchange):
    """A ccxt exchange serving deterministic 1-minute candles from T0 to `now_ms`, at most
    `page_cap` per call (fewer than asked, like many real venues), failing on chosen calls."""

    def __init__(self, clock: FakeClock, now_ms: int, page_cap: int = 300,
                 fail_on: dict[int, Exception] | None = None) -> None:
        super().__init__({"id": "fakex", "rateLimit": 250, "enableRateLimit": False})
        self.clock = clock
        self.now_ms = now_ms
        self.page_cap = page_cap
        self.fail_on = dict(fail_on or {})
        self.calls: list[tuple[int, float]] = []  # (since, clock time)

    def fetch_ohlcv(self, symbol, timeframe="1m", since=None, limit=None, params=None):  # noqa: ANN001, ANN201
        assert symbol in ("BTC/USDT", "ETH/USDT:USDT") and timeframe == "1m"
        self.calls.append((since, self.clock.monotonic()))
        n = len(self.calls)
        if n in self.fail_on:
            raise self.fail_on.pop(n)
        start = max(since, T0)
        start += (-start) % MIN_MS
        out = []
        t = start
        # the exchange also serves the bar still forming (ts + 1m > now), as real ones do
        while t <= self.now_ms and len(out) < min(limit or 10**9, self.page_cap):
            i = (t - T0) // MIN_MS
            c = 100.0 + np.sin(i / 10.0)
            out.append([t, c, c + 0.5, c - 0.5, c + 0.1, 10.0 + i % 7])
            t += MIN_MS
        return out


def _source(ex: FakeExchange, clock: FakeClock, **kw) -> CcxtSource:  # noqa: ANN003
    return CcxtSource(lambda exchange_id: ex, sleep=clock.sleep, monotonic=clock.monotonic,
                      now_ms=lambda: ex.now_ms, backoff_s=0.5, **kw)


def test_uri_parsing_handles_perpetual_symbols_and_rejects_garbage() -> None:
    spec = parse_uri("ccxt:binance:BTC/USDT:USDT,ETH/USDT:1m")
    assert (spec.exchange, spec.symbols, spec.timeframe) == (
        "binance", ("BTC/USDT:USDT", "ETH/USDT"), "1m")
    with pytest.raises(DataError, match="ccxt:<exchange>"):
        parse_uri("ccxt:binance")


def test_pagination_walks_since_forward_and_drops_the_forming_bar() -> None:
    clock = FakeClock()
    now = T0 + 1000 * MIN_MS + 30_000  # bar 1000 is still forming
    ex = FakeExchange(clock, now)
    bars = _source(ex, clock).fetch(ex, "BTC/USDT", "1m", T0)
    ts_ms = bars["ts"].to_numpy() // 1_000_000
    assert bars.height == 1000
    assert np.array_equal(ts_ms, T0 + MIN_MS * np.arange(1000))
    # pages of 300: each call starts one bar after the previous page's last candle
    assert [s for s, _ in ex.calls] == [T0, T0 + 300 * MIN_MS, T0 + 600 * MIN_MS,
                                        T0 + 900 * MIN_MS]


def test_calls_are_paced_and_rate_limit_and_network_errors_are_retried() -> None:
    clock = FakeClock()
    ex = FakeExchange(clock, T0 + 700 * MIN_MS, fail_on={
        2: ccxt.RateLimitExceeded("429 slow down"),
        4: ccxt.RequestTimeout("timed out"),
    })
    bars = _source(ex, clock).fetch(ex, "BTC/USDT", "1m", T0)
    assert bars.height == 700
    times = [t for _, t in ex.calls]
    assert all(b - a >= 0.25 - 1e-9 for a, b in zip(times, times[1:], strict=False))
    # the retried calls asked for the same page again
    assert ex.calls[1][0] == ex.calls[2][0] and ex.calls[3][0] == ex.calls[4][0]
    # a rate-limit refusal backs off by at least twice the exchange's rate limit
    assert max(clock.sleeps) >= 0.5


def test_retries_give_up_with_an_error_naming_exchange_symbol_and_since() -> None:
    clock = FakeClock()
    ex = FakeExchange(clock, T0 + 10 * MIN_MS,
                      fail_on={i: ccxt.NetworkError("down") for i in range(1, 10)})
    with pytest.raises(DataError, match=rf"fakex BTC/USDT 1m: fetch_ohlcv since={T0} failed after 3"):
        _source(ex, clock, max_retries=2).fetch(ex, "BTC/USDT", "1m", T0)


def test_exchange_errors_that_are_not_transient_fail_at_once() -> None:
    clock = FakeClock()
    ex = FakeExchange(clock, T0 + 10 * MIN_MS, fail_on={1: ccxt.BadSymbol("no such market")})
    with pytest.raises(DataError, match="BadSymbol"):
        _source(ex, clock).fetch(ex, "BTC/USDT", "1m", T0)
    assert len(ex.calls) == 1


async def test_ingest_resumes_from_the_last_stored_bar(event_log: EventLog) -> None:
    clock = FakeClock()
    ex = FakeExchange(clock, T0 + 450 * MIN_MS + 1)
    source = _source(ex, clock, history_days=1)
    uri = "ccxt:fakex:BTC/USDT:1m"
    sim = SimulatedClock(0)
    ex.now_ms = T0 + 450 * MIN_MS + 1
    # the first run starts history_days back (before T0): the exchange serves from T0
    first = await load_bars(source, uri, None, event_log, batch_rows=200, clock=sim)
    assert first["BTC/USDT"][0].height == 450
    ex.calls.clear()
    ex.now_ms = T0 + 1000 * MIN_MS + 1
    second = await load_bars(source, uri, None, event_log, batch_rows=200, clock=sim)
    # the second run asked only for what follows the last stored bar
    assert ex.calls[0][0] == T0 + 450 * MIN_MS
    bars, tf = second["BTC/USDT"]
    assert tf == "1m"
    stored = await stored_bars(event_log, "BTC/USDT", "1m")
    assert stored is not None and stored.height == bars.height == 1000
    ts_ms = stored["ts"].to_numpy() // 1_000_000
    assert np.array_equal(ts_ms, T0 + MIN_MS * np.arange(1000))
