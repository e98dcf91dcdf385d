"""Fuzzing a running decider (real nats-server): random bytes and structurally valid but bad
events, published raw on the subjects CORE reads. Every message must be either decided or
dead-lettered, the decider must keep running, and a rejected message must leave the core's
state digest unchanged."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoopt import events as ev
from autoopt.config import load_config
from autoopt.log import EventLog, NatsSettings
from autoopt.plugins import load_plugins
from autoopt.service.checkpoint import Checkpoints
from autoopt.service.core_stream import core_last_seq, ensure_core_stream
from autoopt.service.decider import Decider
from autoopt.service.metrics import ServiceMetrics
from autoopt.subjects import subject_for

SEEDS: list[ev.Event] = [
    ev.SignalEmitted.new(symbol="GOOG", signal_id="s1", side="long", confidence=0.7),
    ev.TradeOutcome.new(symbol="GOOG", trade_id="t1", side="long", qty=1.0, entry_price=100.0,
                        exit_price=101.0, fees=0.1, pnl=0.9, return_=0.009),
    ev.MetricsReported.new(symbol="GOOG", window="1d", metrics={"accuracy": 0.6, "sharpe": 1.0}),
    ev.DriftReported.new(symbol="GOOG", stream="features", statistic="psi", value=0.3,
                         threshold=0.2, drifted=True),
    ev.RetrainRequested.new(symbol="GOOG", reason="manual"),
    ev.TrainingStarted.new(symbol="GOOG", run_id="r", trainer="lgbm"),
    ev.TrainingFinished.new(symbol="GOOG", run_id="r", trainer="lgbm", succeeded=True),
    ev.ModelReleased.new(symbol="GOOG", release_id="rel", model_type="lgbm", sha256="a" * 64, uri="x"),
    ev.ModelPromoted.new(symbol="GOOG", release_id="rel"),
    ev.FeatureBatch.from_arrays(symbol="GOOG", feature_set="default", ts=[1, 2],
                                columns={"a": [0.1, 0.2]}),
]
SUBJECTS = sorted({subject_for(e) for e in SEEDS})

ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.binary(max_size=20),
    st.just(""), st.just(math.nan), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.floats(), max_size=3),
)


@st.composite
def mutated_event(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid core input with one field replaced, removed or added: plausible but bad."""
    seed = draw(st.sampled_from(SEEDS))
    fields: dict[str, Any] = msgspec.to_builtins(seed)
    fields["type"] = seed.type_tag()
    fields["event_id"] = draw(st.uuids()).hex  # raw publishes: no dedup between examples
    how = draw(st.sampled_from(["replace", "remove", "add"]))
    key = draw(st.sampled_from(sorted(fields)))
    if how == "replace":
        fields[key] = draw(ODD_VALUES)
    elif how == "remove":
        del fields[key]
    else:
        fields[draw(st.text(min_size=1, max_size=8))] = draw(ODD_VALUES)
    try:
        raw = msgspec.msgpack.encode(fields)
    except (msgspec.EncodeError, OverflowError):
        raw = msgspec.msgpack.encode({"type": seed.type_tag(), "junk": True})
    return subject_for(seed), raw


RANDOM_BYTES = st.tuples(st.sampled_from(SUBJECTS), st.binary(max_size=256))
MESSAGES = st.one_of(RANDOM_BYTES, mutated_event())


class RunningDecider:
    """A Decider running on its own event loop thread, so hypothesis can drive it per example."""

    def __init__(self, settings_: NatsSettings, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.config = load_config(environ={"AUTOOPT_DATA_DIR": str(data_dir)})
        self.log, self.decider, self.stop, self.task = self.call(self._start(settings_))
        self.rejected = 0
        self.accepted = 0

    def call(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self, settings_: NatsSettings) -> tuple:
        log = await EventLog.connect(settings_)
        await ensure_core_stream(log)
        decider = Decider(log, self.config, load_plugins(entry_points=False), ServiceMetrics(),
                          await Checkpoints.open(log, self.config))
        await decider.restore()
        stop = asyncio.Event()
        return log, decider, stop, asyncio.create_task(decider.run(stop))

    async def probe(self, subject: str, payload: bytes) -> None:
        """Publish one raw message, wait until the decider has passed it, check the outcome."""
        before = self.decider.state.digest()
        start = await core_last_seq(self.log)
        await self.log.js.publish(subject, payload)
        seq = 0
        for _ in range(600):
            assert not self.task.done(), f"the decider stopped: {self.task}"
            last = await core_last_seq(self.log)
            if last > start and self.decider.seq == last:
                seq = last
                break
            await asyncio.sleep(0.02)
        assert seq, "the decider never passed the message"
        letters = [
            r.event async for r in self.log.replay_records("autoopt.deadletter.message.CORE")
            if r.event.seq == seq
        ]
        if letters:
            [letter] = letters
            assert letter.payload == payload and letter.subject == subject
            assert self.decider.state.digest() == before
            self.rejected += 1
        else:
            ev.decode(payload)  # accepted: it really is an event
            self.accepted += 1

    async def _close(self) -> None:
        self.stop.set()
        await self.task
        await self.log.close()

    def close(self) -> None:
        try:
            self.call(self._close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def running_decider(nats_settings: NatsSettings, tmp_path: Path) -> Iterator[RunningDecider]:
    runner = RunningDecider(nats_settings, tmp_path)
    try:
        yield runner
    finally:
        runner.close()


@settings(
    max_examples=60, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(message=MESSAGES)
def test_the_decider_survives_random_and_bad_messages(
    running_decider: RunningDecider, message: tuple[str, bytes]
) -> None:
    subject, payload = message
    running_decider.call(running_decider.probe(subject, payload))


def test_a_valid_event_after_fuzzing_is_still_decided(running_decider: RunningDecider) -> None:
    for payload in (b"", b"\x00", msgspec.msgpack.encode({"type": "metrics.reported"})):
        running_decider.call(running_decider.probe(SUBJECTS[0], payload))
    good = ev.RetrainRequested.new(symbol="GOOG", reason="manual")
    running_decider.call(running_decider.probe(subject_for(good), ev.encode(good)))
    assert running_decider.rejected == 3 and running_decider.accepted == 1
    assert running_decider.decider.state.data.n_events == 1
