"""Every event validates its fields where it is built, appended and decoded: a hostile producer
gets a DataError naming the type and the field; a consumer dead-letters what it cannot use."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import msgspec
import pytest

from autoopt import events as ev
from autoopt.errors import DataError
from autoopt.fieldrules import MAX_TS_NS
from autoopt.log import Delivery, EventLog
from autoopt.subjects import deadletter_subject

# one broken field per event type (type, field, value, what the message says)
BROKEN: list[tuple[type[ev.Event], str, Any, str]] = [
    (ev.DriftReported, "symbol", "", "must not be empty"),
    (ev.DriftReported, "value", float("nan"), "finite"),
    (ev.DriftReported, "threshold", float("inf"), "finite"),
    (ev.SignalEmitted, "symbol", "", "must not be empty"),
    (ev.SignalEmitted, "symbol", "B" * 500, "500 characters long"),
    (ev.SignalEmitted, "symbol", "*", "NATS wildcard"),
    (ev.SignalEmitted, "symbol", "log:>", "NATS wildcard"),
    (ev.SignalEmitted, "side", "sideways", "must be one of"),
    (ev.SignalEmitted, "confidence", float("nan"), "finite"),
    (ev.SignalEmitted, "event_id", "", "must not be empty"),
    (ev.SignalEmitted, "signal_id", "x" * 257, "257 characters long"),
    (ev.SignalEmitted, "correlation_id", "", "must not be empty"),
    (ev.SignalEmitted, "ts_event", -1, "1970-01-01 .. 2200-01-01"),
    (ev.SignalEmitted, "ts_init", MAX_TS_NS + 1, "1970-01-01 .. 2200-01-01"),
    (ev.SignalEmitted, "schema", 0, ">= 1"),
    (ev.Fill, "side", "long", "must be one of 'buy', 'sell'"),
    (ev.Fill, "qty", float("-inf"), "finite"),
    (ev.Fill, "trade_id", "t\n1", "control characters"),
    (ev.TradeOutcome, "pnl", float("nan"), "finite"),
    (ev.TradeOutcome, "return_", float("inf"), "finite"),
    (ev.TradeOutcome, "exit_ts", -3, "1970-01-01"),
    (ev.MetricsReported, "metrics", {"sharpe": float("nan")}, "['sharpe'] must be a finite"),
    (ev.TrainingStarted, "run_id", "", "must not be empty"),
    (ev.TrialCompleted, "state", "DONE", "must be one of"),
    (ev.TrialCompleted, "study", "my study", "whitespace"),
    (ev.ModelReleased, "sha256", "abc", "64 lowercase hex"),
    (ev.ModelPromoted, "release_id", "", "must not be empty"),
    (ev.ModelRolledBack, "from_release_id", "", "must not be empty"),
    (ev.ExperimentCreated, "unit", "desk", "must be one of"),
    (ev.ExperimentCreated, "variants", [], "at least one variant"),
    (ev.ExperimentStarted, "experiment", "exp.*", "NATS wildcard"),
    (ev.VariantAssigned, "bucket", 1.5, "in [0, 1]"),
    (ev.RiskParamsUpdated, "params", {"stop": float("inf")}, "['stop'] must be a finite"),
    (ev.DecisionMade, "kind", "Retrain Now", "dotted lowercase"),
    (ev.ErrorRaised, "component", "", "must not be empty"),
    (ev.DeadLettered, "seq", -1, ">= 0"),
    (ev.SignalsRouted, "router", "", "must not be empty"),
]
IDS = [f"{t.__name__}.{f}={v!r}"[:50] for t, f, v, _ in BROKEN]


def _sample(sample_events: list[ev.Event], event_type: type[ev.Event]) -> ev.Event:
    return next(e for e in sample_events if type(e) is event_type)


def test_every_sample_event_is_valid_and_round_trips(sample_events: list[ev.Event]) -> None:
    assert {type(e) for e in sample_events} == set(ev.ALL_EVENT_TYPES)
    for event in sample_events:
        event.validate()
        assert ev.decode(ev.encode(event)) == event


@pytest.mark.parametrize(("event_type", "field", "value", "problem"), BROKEN, ids=IDS)
def test_a_broken_field_is_refused_when_built_and_when_decoded(
    sample_events: list[ev.Event], event_type: type[ev.Event], field: str, value: Any, problem: str
) -> None:
    good = _sample(sample_events, event_type)
    where = f"{event_type.__name__}.{field}"
    with pytest.raises(DataError, match=re.escape(problem)) as built:
        msgspec.structs.replace(good, **{field: value})
    assert str(built.value).startswith(where) and "\n" not in str(built.value)

    # as a hostile producer writes it: the same map with the field broken
    wire = msgspec.to_builtins(good, builtin_types=(bytes,))
    wire["return" if field == "return_" else field] = value
    with pytest.raises(DataError, match=re.escape(problem)) as decoded:
        ev.decode(msgspec.msgpack.encode(wire))
    assert where in str(decoded.value)


def test_nested_routes_and_variants_are_validated(sample_events: list[ev.Event]) -> None:
    batch = _sample(sample_events, ev.SignalsRouted)
    wire = msgspec.to_builtins(batch)
    wire["routes"][0]["symbol"] = ""
    with pytest.raises(DataError, match=r"SignalRouted\.symbol '' must not be empty"):
        ev.decode(msgspec.msgpack.encode(wire))
    created = _sample(sample_events, ev.ExperimentCreated)
    wire = msgspec.to_builtins(created)
    wire["variants"][0]["weight"] = float("nan")
    with pytest.raises(DataError, match=r"ExperimentCreated\.variants \[0\]\.weight nan must be"):
        ev.decode(msgspec.msgpack.encode(wire))


def test_what_the_code_base_uses_stays_valid() -> None:
    """Values the demo, the router, the core and the A/B decisions write."""
    ev.ExperimentCreated.new(
        experiment="all-symbols", symbol="*", seed="s",
        variants=[ev.VariantSpec(name="a", release_id="r1", weight=1.0)],
    )  # fmt: skip
    ev.DecisionMade.new(symbol="*", kind="ab.promote", reason="msprt")
    for kind in ("retrain", "suppressed", "held", "expired", "hold"):
        ev.DecisionMade.new(symbol="BTC/USDT", kind=kind, reason="r")
    ev.SignalRouted.new(
        symbol="ES.Z26", signal_id="s", experiment="x", variant="a", release_id="r1"
    )  # side "" (default) is allowed on a route
    ev.TrialCompleted.new(study="BTCUSDT.lgbm.0123456789abcdef", number=0, state="PRUNED")
    ev.TrialCompleted.new(study="s", number=1, state="COMPLETE", value=float("inf"))
    for side in ("long", "short", "buy", "sell"):
        ev.TradeOutcome.new(
            symbol="EUR-USD", trade_id="t", side=side, qty=1.0, entry_price=1.0, exit_price=1.1,
            fees=0.0, pnl=0.1, return_=0.1,
        )  # fmt: skip


async def test_append_refuses_an_invalid_event_naming_type_and_field(
    event_log: EventLog,
) -> None:
    """An event forced past its constructor is still refused on append; nothing is stored."""
    bad = ev.DriftReported.new(
        symbol="BTCUSDT", stream="ret", statistic="psi", value=0.1, threshold=0.2, drifted=False
    )
    msgspec.structs.force_setattr(bad, "symbol", "")
    with pytest.raises(DataError, match=r"DriftReported\.symbol '' must not be empty"):
        await event_log.append(bad)
    with pytest.raises(DataError, match=r"DriftReported\.symbol"):
        await event_log.append_many([ev.SignalEmitted.new(
            symbol="BTCUSDT", signal_id="s", side="long", confidence=0.5), bad])  # fmt: skip
    for stored in ("autoopt.metrics.>", "autoopt.signal.>"):
        assert [e async for e in event_log.replay(stored)] == []


async def test_a_consumer_dead_letters_a_hostile_event_and_goes_on(event_log: EventLog) -> None:
    good = ev.SignalEmitted.new(symbol="BTCUSDT", signal_id="s1", side="long", confidence=0.5)
    hostile = msgspec.to_builtins(good)
    hostile.update(event_id="", symbol="")
    raw = msgspec.msgpack.encode(hostile)
    await event_log.js.publish("autoopt.signal.emitted.BTCUSDT", raw)
    await event_log.append(good)
    handled: list[ev.Event] = []
    stop = asyncio.Event()

    async def handler(event: ev.Event, info: Delivery) -> None:
        handled.append(event)
        stop.set()

    await asyncio.wait_for(
        event_log.consume("svc", "autoopt.signal.>", handler, stop=stop, poll_s=0.2), 10
    )
    assert handled == [good]
    (letter,) = [e async for e in event_log.replay(deadletter_subject("SIGNALS"))]
    assert isinstance(letter, ev.DeadLettered)
    assert letter.payload == raw and "SignalEmitted.event_id '' must not be empty" in letter.error


def test_a_release_with_a_malformed_manifest_digest_is_refused() -> None:
    from autoopt.errors import DataError
    from autoopt.events import ModelReleased

    fields = dict(symbol="GOOG", release_id="r1", model_type="lightgbm", sha256="a" * 64,
                  uri="file:///x", trainer="lgbm")
    assert ModelReleased.new(**fields, manifest_sha256="").manifest_sha256 == ""
    assert ModelReleased.new(**fields, manifest_sha256="b" * 64).manifest_sha256 == "b" * 64
    with pytest.raises(DataError, match="manifest_sha256"):
        ModelReleased.new(**fields, manifest_sha256="not-a-digest")
