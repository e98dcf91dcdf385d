"""Event log throughput against a real nats-server, each case beside its naive peer.

Run: ``python -m pytest benches/bench_eventlog.py --benchmark-only --benchmark-columns=min,median,ops``

Groups:
    append      `EventLog.append_many` (pipelined publishes, acks matched by reply subject) vs
                a loop of awaited ``js.publish`` with the same Nats-Msg-Id header; 2,000 new
                signal events per round.
    replay      `EventLog.replay` (ephemeral pull consumer, large batches, bulk decode) vs an
                ordered push consumer read with ``next_msg`` and decoded one by one; 20,000
                signal events.
    bar-replay  `EventLog.replay` of 100 `BarBatch` events x 10,000 bars (1,000,000 bars), each
                decoded and viewed as numpy columns; vs the same through the naive consumer.
The rate per second of each case is in ``extra_info`` (``--benchmark-json``) and printed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from autoopt import events as ev
from autoopt.log import EventLog
from autoopt.subjects import subject_for

N_APPEND = 2_000
N_REPLAY = 20_000
N_BATCHES, BARS_PER_BATCH = 100, 10_000


def _signals(n: int, symbol: str = "BTCUSDT") -> list[ev.Event]:
    return [
        ev.SignalEmitted.new(
            symbol=symbol, signal_id=f"s{i}", side="long", confidence=0.5, release_id="r1"
        )
        for i in range(n)
    ]


def _report(benchmark: Any, what: str, count: int) -> None:
    stats = benchmark.stats.stats
    rate = count / stats.median
    benchmark.extra_info[f"{what}_per_s"] = rate
    print(f"\n{benchmark.name}: {rate:,.0f} {what}/s (median of {stats.rounds})")


# ------------------------------------------------------------------------------------ append


def test_append_naive_awaited_publish(
    benchmark: Any, loop: asyncio.AbstractEventLoop, bench_log: EventLog
) -> None:
    benchmark.group = "append"
    js = bench_log.js

    async def run(events: list[ev.Event]) -> None:
        for e in events:
            await js.publish(subject_for(e), ev.encode(e), headers={"Nats-Msg-Id": e.event_id})

    benchmark.pedantic(
        lambda events: loop.run_until_complete(run(events)),
        setup=lambda: ((_signals(N_APPEND, "NAIVE"),), {}),
        rounds=5,
    )
    _report(benchmark, "events", N_APPEND)


def test_append_many_pipelined(
    benchmark: Any, loop: asyncio.AbstractEventLoop, bench_log: EventLog
) -> None:
    benchmark.group = "append"

    def run(events: list[ev.Event]) -> None:
        results = loop.run_until_complete(bench_log.append_many(events))
        assert len(results) == N_APPEND and not results[-1].duplicate

    benchmark.pedantic(run, setup=lambda: ((_signals(N_APPEND, "PIPED"),), {}), rounds=5)
    _report(benchmark, "events", N_APPEND)


# ------------------------------------------------------------------------------------ replay


@pytest.fixture(scope="module")
def replay_data(loop: asyncio.AbstractEventLoop, bench_log: EventLog) -> str:
    events = _signals(N_REPLAY, "REPLAY")
    loop.run_until_complete(bench_log.append_many(events))
    bars = [
        ev.BarBatch.from_arrays(
            symbol="BTCUSDT",
            timeframe="1m",
            ts=np.arange(i * BARS_PER_BATCH, (i + 1) * BARS_PER_BATCH, dtype=np.int64),
            open=np.full(BARS_PER_BATCH, 1.0),
            high=np.full(BARS_PER_BATCH, 2.0),
            low=np.full(BARS_PER_BATCH, 0.5),
            close=np.full(BARS_PER_BATCH, 1.5),
            volume=np.full(BARS_PER_BATCH, float(i)),
        )
        for i in range(N_BATCHES)
    ]
    loop.run_until_complete(bench_log.append_many(bars))
    return "autoopt.signal.emitted.REPLAY"


async def _naive_replay(log: EventLog, subject: str, n: int) -> list[ev.Event]:
    sub = await log.js.subscribe(subject, ordered_consumer=True)
    out = []
    try:
        while len(out) < n:
            msg = await sub.next_msg(timeout=5)
            out.append(ev.decode(msg.data))
    finally:
        await sub.unsubscribe()
    return out


def test_replay_naive_ordered_consumer(
    benchmark: Any, loop: asyncio.AbstractEventLoop, bench_log: EventLog, replay_data: str
) -> None:
    benchmark.group = "replay"
    out = benchmark.pedantic(
        lambda: loop.run_until_complete(_naive_replay(bench_log, replay_data, N_REPLAY)),
        rounds=3,
    )
    assert len(out) == N_REPLAY
    _report(benchmark, "events", N_REPLAY)


def test_replay_eventlog(
    benchmark: Any, loop: asyncio.AbstractEventLoop, bench_log: EventLog, replay_data: str
) -> None:
    benchmark.group = "replay"

    async def run() -> int:
        n = 0
        async for _ in bench_log.replay(replay_data):
            n += 1
        return n

    assert benchmark.pedantic(lambda: loop.run_until_complete(run()), rounds=3) == N_REPLAY
    _report(benchmark, "events", N_REPLAY)


# -------------------------------------------------------------------------------- bar replay


def test_bar_replay_naive_ordered_consumer(
    benchmark: Any, loop: asyncio.AbstractEventLoop, bench_log: EventLog, replay_data: str
) -> None:
    benchmark.group = "bar-replay"

    async def run() -> int:
        batches = await _naive_replay(bench_log, "autoopt.market.bars.BTCUSDT", N_BATCHES)
        return sum(len(b.arrays()["close"]) for b in batches)

    assert benchmark.pedantic(lambda: loop.run_until_complete(run()), rounds=3) == 1_000_000
    _report(benchmark, "bars", N_BATCHES * BARS_PER_BATCH)


def test_bar_replay_eventlog(
    benchmark: Any, loop: asyncio.AbstractEventLoop, bench_log: EventLog, replay_data: str
) -> None:
    benchmark.group = "bar-replay"

    async def run() -> int:
        n = 0
        async for batch in bench_log.replay("autoopt.market.bars.BTCUSDT"):
            n += len(batch.arrays()["close"])
        return n

    assert benchmark.pedantic(lambda: loop.run_until_complete(run()), rounds=3) == 1_000_000
    _report(benchmark, "bars", N_BATCHES * BARS_PER_BATCH)
