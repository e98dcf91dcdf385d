"""The events that used to crash-loop `autoopt serve` (issue 13's first bullet), sent as a hostile
producer would, raw, into a running decider on a real nats-server: each is dead-lettered with
its bytes, the decider goes on, and the schedule that a bad `SignalEmitted` used to turn into a
time bomb fires at its tick."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import msgspec

from autoopt.config import Config, PolicyConfig
from autoopt.events import ClockTick, DeadLettered, DecisionMade, encode
from autoopt.log import EventLog
from autoopt.plugins import load_plugins
from autoopt.service.checkpoint import Checkpoints
from autoopt.service.core_stream import core_last_seq, ensure_core_stream
from autoopt.service.decider import Decider
from autoopt.service.metrics import ServiceMetrics

NS = 1_000_000_000


def _raw(tag: str, **fields: object) -> bytes:
    base = {"type": tag, "event_id": "ev-" + tag, "ts_event": 1, "ts_init": 1}
    return msgspec.msgpack.encode(base | fields)


HOSTILE = [
    ("autoopt.metrics.drift.GOOG", _raw("metrics.drift", symbol="", stream="prediction",
                                        statistic="psi", value=0.9, threshold=0.2, drifted=True)),
    ("autoopt.metrics.drift.GOOG", _raw("metrics.drift", event_id="", symbol="GOOG",
                                        stream="prediction", statistic="psi", value=0.9,
                                        threshold=0.2, drifted=True)),
    ("autoopt.metrics.drift.GOOG", _raw("metrics.drift", symbol="X" * 500, stream="prediction",
                                        statistic="psi", value=0.9, threshold=0.2, drifted=True)),
    ("autoopt.signal.emitted.GOOG", _raw("signal.emitted", symbol="", signal_id="s1",
                                         side="long", confidence=0.7)),
    ("autoopt.signal.emitted.GOOG", _raw("signal.emitted", symbol="*", signal_id="s2",
                                         side="long", confidence=0.7)),
    ("autoopt.signal.emitted.GOOG", _raw("signal.emitted", symbol="GOOG", signal_id="s3",
                                         side="long", confidence=float("nan"))),
]


async def test_the_events_that_crash_looped_serve_are_dead_lettered_and_the_schedule_fires(
        tmp_path: Path, event_log: EventLog) -> None:
    log = event_log
    config = Config(data_dir=str(tmp_path), symbols=["GOOG"],
                    policy=PolicyConfig(schedule="0 3 * * *", cooldown_s=0.0))
    await ensure_core_stream(log)
    decider = Decider(log, config, load_plugins(entry_points=False), ServiceMetrics(),
                      await Checkpoints.open(log, config))
    await decider.restore()
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if dt.datetime.now(dt.UTC).hour < 4:
        today -= dt.timedelta(days=1)  # ticks must not be ahead of their storage time
    t2, t3 = (int((today + dt.timedelta(hours=h)).timestamp()) * NS for h in (2, 3))
    stop = asyncio.Event()
    task = asyncio.create_task(decider.run(stop))
    try:
        await log.append(ClockTick.at(t2))  # GOOG registers; its next instant is 03:00
        for subject, payload in HOSTILE:
            await log.js.publish(subject, payload)
        await log.js.publish("autoopt.metrics.tick.clock", encode(ClockTick.at(t3)))
        for _ in range(400):
            last = await core_last_seq(log)
            if last >= len(HOSTILE) + 2 and decider.seq == last:
                break
            await asyncio.sleep(0.05)
        assert not task.done()  # the decider is still running
        assert decider.seq == len(HOSTILE) + 2
    finally:
        stop.set()
        await task
    letters = [e async for e in log.replay("DEADLETTER")]
    assert all(isinstance(e, DeadLettered) for e in letters)
    assert sorted(e.payload for e in letters) == sorted(p for _, p in HOSTILE)
    assert all(e.consumer == "decider" and e.error for e in letters)
    decisions = [e async for e in log.replay("DECISIONS") if isinstance(e, DecisionMade)]
    assert [(d.kind, d.symbol, d.reason) for d in decisions if d.kind == "retrain"] == [
        ("retrain", "GOOG", "schedule")]
