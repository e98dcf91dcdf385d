"""Wall-clock schedules fire on time: `ClockTick` moves the core's clock (pure `decide`), `autoopt
serve` records one per minute on a real nats-server, and replay reproduces what it decided."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from autoopt.clock import NS_PER_S, SimulatedClock
from autoopt.config import Config, PolicyConfig, load_config
from autoopt.core import State, replay_decisions, verify_recorded
from autoopt.core.decide import decide
from autoopt.errors import ConfigError, DataError
from autoopt.events import ClockTick, DecisionMade, Event, MetricsReported, decode
from autoopt.log import EventLog, NatsSettings
from autoopt.plugins import load_plugins
from autoopt.runtime import open_event_log
from autoopt.service import CORE_STREAM, Service
from autoopt.service.core_stream import ensure_core_stream
from autoopt.service.ticker import TICK_NS, Ticker, tick_instant
from autoopt.subjects import subject_filter_for_type

MINUTE = 60 * NS_PER_S
HOUR = 60 * MINUTE
T0 = 1_767_225_600 * NS_PER_S  # 2026-01-01 00:00:00 UTC


def _nightly(symbols: list[str]) -> Config:
    return Config(symbols=symbols, policy=PolicyConfig(schedule="0 3 * * *", cooldown_s=0.0))


# ----------------------------------------------------------------------------- pure core


def test_a_schedule_fires_at_the_tick_of_its_instant_on_a_log_of_ticks_only() -> None:
    config = _nightly(["BTC"])
    state = State()
    fired: list[tuple[int, list]] = []
    for minute in range(0, 4 * 60 + 1):  # 00:00 .. 04:00, each tick stored 0.3 s late
        instant = T0 + minute * MINUTE
        state, out = decide(state, ClockTick.at(instant), instant + 3 * NS_PER_S // 10, config)
        if out:
            fired.append((minute, out))
    assert [(m, [(c.kind, c.symbol, c.reason) for c in out]) for m, out in fired] == [
        (180, [("retrain", "BTC", "schedule")]),
        (240, [("expired", "BTC", "expired.pending")]),  # timeouts too: pending_timeout_s 1 h
    ]
    (cmd,) = fired[0][1]
    assert cmd.ts == T0 + 3 * HOUR  # the instant itself, not the time the tick was stored
    assert cmd.details["instant_ns"] == T0 + 3 * HOUR
    assert state.data.clock_ns == T0 + 4 * HOUR
    assert set(state.data.symbols) == {"BTC"}  # a tick registers no symbol of its own


def test_a_tick_only_moves_the_clock_forward_and_never_past_its_storage_time() -> None:
    config = Config(policy=PolicyConfig(schedule=None))
    state = State()
    state, out = decide(state, ClockTick.at(T0 + HOUR), T0 + HOUR, config)
    assert out == [] and state.data.clock_ns == T0 + HOUR and state.data.symbols == {}
    state, out = decide(state, ClockTick.at(T0), T0 + 2 * HOUR, config)  # a late tick
    assert out == [] and state.data.clock_ns == T0 + HOUR
    state, out = decide(state, ClockTick.at(T0 + 48 * HOUR), T0 + 3 * HOUR, config)  # forged future
    assert out == [] and state.data.clock_ns == T0 + 3 * HOUR


def test_replay_reproduces_the_schedule_decided_on_ticks_between_other_events() -> None:
    config = _nightly(["BTC", "ETH"])
    items: list[tuple[Event, int]] = []
    for minute in range(170, 200):
        instant = T0 + minute * MINUTE
        items.append((ClockTick.at(instant), instant + NS_PER_S))
        if minute % 7 == 0:
            m = MetricsReported.new(symbol="ETH", window="1d", metrics={"accuracy": 0.6})
            items.append((m, instant + 2 * NS_PER_S))
    stepped = State()
    outputs = []
    for event, now in items:
        stepped, out = decide(stepped, event, now, config)
        outputs += out
    first, second = replay_decisions(items, config), replay_decisions(items, config)
    assert first.digest == second.digest
    assert msgspec.msgpack.encode(first.commands()) == msgspec.msgpack.encode(outputs)
    assert [(c.symbol, c.reason, c.ts) for c in first.commands() if c.kind == "retrain"] == [
        ("BTC", "schedule", T0 + 3 * HOUR)  # max_concurrent = 1: ETH's is suppressed
    ]
    assert first.decisions[0].event_type == "metrics.tick"


def test_the_tick_id_comes_from_its_instant_and_bad_ticks_are_refused() -> None:
    a, b = ClockTick.at(T0, clock=SimulatedClock(T0 + 1)), ClockTick.at(T0, clock=SimulatedClock(T0 + 9))
    assert a.event_id == b.event_id != ClockTick.at(T0 + MINUTE).event_id
    assert (a.ts_event, a.ts_init, a.scope) == (T0, T0 + 1, "clock")
    with pytest.raises(DataError, match=r"^ClockTick\.component '' must not be empty"):
        ClockTick.new(ts_event=T0, component="")
    wire = msgspec.to_builtins(a)
    wire["ts_event"] = -5
    with pytest.raises(DataError, match=r"ClockTick\.ts_event"):
        decode(msgspec.msgpack.encode(wire))
    assert tick_instant(T0 + 59 * NS_PER_S) == T0 and tick_instant(T0 + MINUTE) == T0 + MINUTE


def test_a_negative_tick_interval_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match="tick_interval_s") as err:
        load_config(environ={"AUTOOPT_SERVICE__TICK_INTERVAL_S": "-1"})
    assert "\n" not in str(err.value)


# -------------------------------------------------------------------- real nats-server


async def _wait(what: str, check, timeout: float = 30.0):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


async def _ticks(log: EventLog) -> list[ClockTick]:
    return [e async for e in log.replay(subject_filter_for_type(ClockTick)) if isinstance(e, ClockTick)]


async def test_two_tickers_store_one_tick_per_instant(nats_settings: NatsSettings) -> None:
    logs = [await EventLog.connect(nats_settings) for _ in range(2)]
    await ensure_core_stream(logs[0])
    start = tick_instant(time.time_ns()) - 30 * MINUTE + 7 * NS_PER_S
    clocks = [SimulatedClock(start), SimulatedClock(start + 20 * NS_PER_S)]  # skewed by 20 s
    tickers = [Ticker(log, 0.05, clock=clock) for log, clock in zip(logs, clocks, strict=True)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(t.run(stop)) for t in tickers]
    expected = [tick_instant(start) + i * TICK_NS for i in range(4)]
    try:
        for i, instant in enumerate(expected):
            if i:
                for clock in clocks:
                    clock.advance(60)

            async def both_ticked(instant: int = instant) -> bool:
                return all(t.last_ns == instant for t in tickers)

            await _wait(f"both tickers at {instant}", both_ticked)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    try:
        ticks = await _ticks(logs[0])
        assert [t.ts_event for t in ticks] == expected
        assert len({t.event_id for t in ticks}) == len(expected)
        assert [t.appended for t in tickers] == [4, 4]  # each appended every tick, stored once

        async def in_core() -> list[ClockTick]:
            found = [r.event async for r in logs[0].replay_records(CORE_STREAM)]
            return found if len(found) >= len(expected) else []

        core = await _wait("ticks sourced into CORE", in_core)
        assert [e.ts_event for e in core] == expected
    finally:
        for log in logs:
            await log.close()


SERVE_CONFIG = """
symbols = ["GOOG"]
[policy]
schedule = "* * * * *"
cooldown_s = 0
[service]
http_port = 0
tick_interval_s = 0.2
max_job_age_s = 1
"""


async def test_serve_decides_a_scheduled_retrain_on_a_quiet_log_at_the_cron_instant(
    tmp_path: Path, nats_server: str
) -> None:
    path = tmp_path / "autoopt.toml"
    path.write_text(SERVE_CONFIG)
    environ = {**os.environ, "AUTOOPT_DATA_DIR": str(tmp_path / "data"), "AUTOOPT_NATS_URL": nats_server}
    config = load_config(path, environ=environ)
    # the ticker's clock, half a minute into a minute ten minutes ago (ticks are stored later
    # than their instants, as in real life); the job that follows is skipped as stale
    first = tick_instant(time.time_ns()) - 10 * MINUTE
    clock = SimulatedClock(first + 30 * NS_PER_S)
    log = await open_event_log(config)
    service = Service(config, log, load_plugins(), clock=clock)
    serving = asyncio.create_task(service.run())
    try:

        async def core_at(instant: int) -> bool:
            d = service.decider
            return d is not None and d.state.data.clock_ns == instant

        await _wait("the first tick decided", lambda: core_at(first))
        assert await _decisions(log) == []  # GOOG registered at the first tick: nothing due yet
        clock.advance(60)  # the next minute: "* * * * *" is due
        [decision] = await _wait("a scheduled retrain", lambda: _decisions(log))
        assert (decision.kind, decision.symbol, decision.reason) == ("retrain", "GOOG", "schedule")
        assert decision.ts_event == first + MINUTE == decision.details["instant_ns"]
        assert service.ticker is not None and service.ticker.last_ns == first + MINUTE
    finally:
        service.stop.set()
        await serving
        await log.close()
    assert serving.exception() is None

    replayed = subprocess.run(
        [sys.executable, "-m", "autoopt.cli", "replay", "--decisions"],
        env={**environ, "AUTOOPT_CONFIG": str(path), "COLUMNS": "250"}, capture_output=True, text=True, timeout=120,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert "schedule" in replayed.stdout
    digest = replayed.stdout.split("digest ", 1)[1].split()[0]
    log = await open_event_log(config)
    try:
        items = [(r.event, r.time_ns) async for r in log.replay_records(CORE_STREAM)]
        recorded = [e async for e in log.replay(subject_filter_for_type(DecisionMade))]
    finally:
        await log.close()
    result = replay_decisions(items, config)
    assert result.digest == digest
    assert verify_recorded(recorded, result) == len(recorded) == 1  # what serve decided, exactly
    assert [e.ts_event for e, _ in items if isinstance(e, ClockTick)][:2] == [first, first + MINUTE]


async def _decisions(log: EventLog) -> list[DecisionMade]:
    return [e async for e in log.replay(subject_filter_for_type(DecisionMade)) if isinstance(e, DecisionMade)]
