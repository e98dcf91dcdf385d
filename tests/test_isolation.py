"""Per-event isolation in the service: a failing event, reaction, append or job never stops it,
and the decider's state and checkpoints only ever hold completed steps. Real nats-server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import msgspec
import pytest

from autoopt.config import Config, load_config
from autoopt.core import State
from autoopt.events import (
    DeadLettered,
    DecisionMade,
    ErrorRaised,
    Event,
    FeatureBatch,
    MetricsReported,
    RetrainRequested,
    RiskParamsUpdated,
    TrainingFinished,
)
from autoopt.log import EventLog
from autoopt.plugins import hookimpl, load_plugins
from autoopt.service.checkpoint import Checkpoints
from autoopt.service.core_stream import core_last_seq, ensure_core_stream
from autoopt.service.decider import Decider
from autoopt.service.jobs import JobRunner
from autoopt.service.metrics import ServiceMetrics
from autoopt.subjects import subject_filter_for_type


def _config(tmp_path: Path, url: str, **service: object) -> Config:
    config = load_config(environ={"AUTOOPT_DATA_DIR": str(tmp_path), "AUTOOPT_NATS_URL": url})
    policy = msgspec.structs.replace(config.policy, schedule=None, cooldown_s=0.0)
    svc = msgspec.structs.replace(config.service, http_port=0, **service)
    return msgspec.structs.replace(config, policy=policy, service=svc)


async def _decider(log: EventLog, config: Config, *plugins: object) -> Decider:
    await ensure_core_stream(log)
    extra = [(f"p{i}", p) for i, p in enumerate(plugins)]
    decider = Decider(
        log, config, load_plugins(entry_points=False, extra=extra), ServiceMetrics(),
        await Checkpoints.open(log, config),
    )
    await decider.restore()
    return decider


async def _events(log: EventLog, cls: type[Event]) -> list[Event]:
    return [e async for e in log.replay(subject_filter_for_type(cls))]


async def _until(predicate, what: str) -> None:  # noqa: ANN001 - async predicate
    for _ in range(400):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def _at(log: EventLog, decider: Decider, n: int):  # noqa: ANN202 - an async predicate
    """The decider has decided the first ``n`` CORE messages (sourcing into CORE is async)."""

    async def check() -> bool:
        last = await core_last_seq(log)
        return last >= n and decider.seq == last

    return check


class FailingReaction:
    """A plugin whose reaction to a negative Sharpe raises; to a positive one it answers."""

    @hookimpl
    def autoopt_on_event(self, event):  # noqa: ANN001, ANN201
        if isinstance(event, MetricsReported):
            if event.metrics.get("sharpe", 0.0) < 0:
                raise RuntimeError("reaction bug")
            return [RiskParamsUpdated.new(symbol=event.symbol, params={"size": 1.0}, tuner="t")]
        return None


def _breaking_reference() -> FeatureBatch:
    """A release reference whose value bytes do not fit its shape: `decide` raises on it.
    (Validation refuses to build or decode one; a bug in a producer is what it models.)"""
    fb = FeatureBatch.from_arrays(
        symbol="GOOG", feature_set="default", ts=[1, 2],
        columns={"a": [1.0, 2.0], "b": [3.0, 4.0]}, release_id="r1",
    )
    msgspec.structs.force_setattr(fb, "values", b"\x00" * 5)
    return fb


async def test_an_event_decide_raises_on_is_dead_lettered_and_changes_nothing(
    tmp_path: Path, event_log: EventLog
) -> None:
    config = _config(tmp_path, event_log.settings.urls[0])
    decider = await _decider(event_log, config)
    assert await decider.feed(MetricsReported.new(symbol="GOOG", window="1d", metrics={"sharpe": 1.0}), 10)
    before = decider.state.digest()
    bad = _breaking_reference()
    assert await decider.feed(bad, 20) is True  # handled: the decider goes on
    assert decider.state.digest() == before
    [letter] = await _events(event_log, DeadLettered)
    assert letter.consumer == "decider" and letter.causation_id == bad.event_id
    assert letter.error.startswith("decide failed: ValueError")
    assert letter.payload == msgspec.msgpack.encode(bad)
    # the next event is decided as usual
    assert await decider.feed(RetrainRequested.new(symbol="GOOG", reason="manual"), 30)
    assert decider.state.data.n_events == 2
    assert len(await _events(event_log, DecisionMade)) >= 1


async def test_a_failing_plugin_reaction_is_dead_lettered_and_the_decision_still_counts(
    tmp_path: Path, event_log: EventLog
) -> None:
    config = _config(tmp_path, event_log.settings.urls[0])
    decider = await _decider(event_log, config, FailingReaction())
    stop = asyncio.Event()
    task = asyncio.create_task(decider.run(stop))
    try:
        await event_log.append(MetricsReported.new(symbol="GOOG", window="1d", metrics={"sharpe": -1.0}))
        await event_log.append(MetricsReported.new(symbol="GOOG", window="1d", metrics={"sharpe": 2.0}))
        await _until(_at(event_log, decider, 2), "decider caught up")
        assert decider.state.data.n_events == 2
        [letter] = await _events(event_log, DeadLettered)
        assert letter.stream == "CORE" and letter.error == "plugin reaction failed: RuntimeError: reaction bug"
        assert len(await _events(event_log, RiskParamsUpdated)) == 1  # the later event's reaction
        # a replay of the same log (no plugins) reaches the same state
        again = State()
        from autoopt.core import replay_decisions

        items = [(r.event, r.time_ns) async for r in event_log.replay_records("CORE")]
        replay_decisions(items, config, state=again)
        assert again.digest() == decider.state.digest()
    finally:
        stop.set()
        await task


async def test_a_refused_append_is_retried_without_advancing_and_never_doubles_counts(
    tmp_path: Path, event_log: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(tmp_path, event_log.settings.urls[0], checkpoint_every=1)
    decider = await _decider(event_log, config)
    stop = asyncio.Event()
    task = asyncio.create_task(decider.run(stop))
    try:
        await event_log.append(MetricsReported.new(symbol="GOOG", window="1d", metrics={"sharpe": 1.0}))
        await _until(_at(event_log, decider, 1), "first event decided")
        seq, digest, n = decider.seq, decider.state.digest(), decider.state.data.n_events
        await event_log.js.delete_stream("DECISIONS")  # the decision's append now fails
        with caplog.at_level(logging.WARNING, logger="autoopt.service.decider"):
            await event_log.append(RetrainRequested.new(symbol="GOOG", reason="manual"))

            async def retrying() -> bool:
                return any("failed (retrying" in r.getMessage() for r in caplog.records)

            await _until(retrying, "a failed append retried")
            assert (decider.seq, decider.state.digest()) == (seq, digest)
            stored = await Checkpoints.open(event_log, config)
            cp = await stored.load()
            assert cp is not None and cp[1] == seq and cp[0].digest() == digest
        await event_log.ensure_streams()  # the log is back
        await _until(_at(event_log, decider, 2), "retried step completed")
        assert decider.state.data.n_events == n + 1
        decisions = [d for d in await _events(event_log, DecisionMade) if d.kind == "retrain"]
        assert len(decisions) == 1
    finally:
        stop.set()
        await task


async def test_stopping_during_a_refused_append_leaves_the_checkpoint_at_the_last_complete_step(
    tmp_path: Path, event_log: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(tmp_path, event_log.settings.urls[0], checkpoint_every=1)
    decider = await _decider(event_log, config)
    stop = asyncio.Event()
    task = asyncio.create_task(decider.run(stop))
    await event_log.append(MetricsReported.new(symbol="GOOG", window="1d", metrics={"sharpe": 1.0}))
    await _until(_at(event_log, decider, 1), "first event decided")
    seq, digest = decider.seq, decider.state.digest()
    await event_log.js.delete_stream("DECISIONS")
    with caplog.at_level(logging.WARNING, logger="autoopt.service.decider"):
        await event_log.append(RetrainRequested.new(symbol="GOOG", reason="manual"))

        async def retrying() -> bool:
            return any("failed (retrying" in r.getMessage() for r in caplog.records)

        await _until(retrying, "a failed append retried")
    stop.set()
    await task
    cp = await (await Checkpoints.open(event_log, config)).load()
    assert cp is not None and cp[1] == seq and cp[0].digest() == digest
    # a restarted decider decides the interrupted event once the log takes appends again
    await event_log.ensure_streams()
    again = await _decider(event_log, config)
    assert again.seq == seq
    stop2 = asyncio.Event()
    task2 = asyncio.create_task(again.run(stop2))
    try:
        await _until(_at(event_log, again, 2), "restart caught up")
        assert [d.kind for d in await _events(event_log, DecisionMade)].count("retrain") == 1
    finally:
        stop2.set()
        await task2


async def test_a_failing_retrain_job_is_recorded_and_dead_lettered_not_fatal(
    tmp_path: Path, event_log: EventLog
) -> None:
    config = _config(
        tmp_path, event_log.settings.urls[0], source="nosuchsource:x", max_deliver=2, ack_wait_s=5.0,
    )
    runner = JobRunner(event_log, config, load_plugins(entry_points=True), ServiceMetrics())
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        decision = DecisionMade.new(symbol="GOOG", kind="retrain", reason="manual")
        await event_log.append(decision)

        async def dead() -> bool:
            return bool(await _events(event_log, DeadLettered))

        await _until(dead, "the decision dead-lettered after its last attempt")
        assert not task.done()  # the runner is still serving
        errors = [e for e in await _events(event_log, ErrorRaised) if e.causation_id == decision.event_id]
        assert sorted(e.details["attempt"] for e in errors) == [1, 2]
        assert all(e.component == "jobs" and e.message for e in errors)
        finished = await _events(event_log, TrainingFinished)
        assert finished and all(not f.succeeded and f.error for f in finished)
        [letter] = await _events(event_log, DeadLettered)
        assert letter.seq and letter.payload == msgspec.msgpack.encode(decision)
        assert runner.gave_up == [decision.event_id]
    finally:
        stop.set()
        await task
