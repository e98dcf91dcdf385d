"""`decide(state, event, now_ns, config) -> (state, commands)`: the decision core's one entry point.

Pure: no I/O, no wall clock, no randomness; ``now_ns`` comes in. The same events with the same
``now_ns`` values and the same config give the same outputs, byte for byte (`encode_commands`).

The clock: the core keeps ``max`` of every ``now_ns`` it was given (a late event cannot move time
back). What ``now_ns`` is, is the caller's contract and must be recoverable from the log so replay
reproduces it: the service should pass the JetStream timestamp of the message (replay reads the
same), or ``event.ts_event`` when the log is a simulation; `replay_decisions` defaults to the latter.

Clock ticks: a `ClockTick` is a pure clock move to its instant, never past the ``now_ns`` it came
with (``min(ts_event, now_ns)``: a tick stored at 03:00:00.2 moves the clock to 03:00 exactly, and
a forged future tick cannot move it beyond the time it was stored). It is no fact, no trigger and
registers no symbol of its own, but it goes through every other step, so the config's symbols
are registered on a log of ticks only and a schedule fires at the first tick at or after its
instant. The instant is in the event, so replay reproduces the move exactly.

Per event, in this order:
    1. register symbols (config symbols and per-symbol overrides on the first event; an event's
       ``symbol`` on first sight: its schedule counts from then);
    2. apply the event as a fact (training started/finished, release, promotion, rollback, a
       training reference, a manual request joining the queue);
    3. expire in-flight slots past their timeouts;
    4. drain the manual queue;
    5. fire schedules whose instant the clock reached (all symbols, sorted);
    6. the event's own trigger (degradation, PSI/KS, streaming detectors, reported drift).
A retrain decided in one step makes later triggers of the same symbol "suppressed.pending".

Ignored entirely (no clock move, no output): DecisionMade (the core's own outputs, recorded).
A RetrainRequested of any reason is a manual request (`autoopt.core.policies.manual`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autoopt.config import Config, PolicyConfig
from autoopt.core.commands import Command
from autoopt.core.context import Ctx, resolve
from autoopt.core.detectors import StreamDetectors
from autoopt.core.detectors import builtin as builtin_detectors
from autoopt.core.policies import degradation, drift, lifecycle, manual, schedule
from autoopt.core.state import State
from autoopt.events import (
    ClockTick,
    DecisionMade,
    DriftReported,
    Event,
    FeatureBatch,
    MetricsReported,
    ModelPromoted,
    ModelReleased,
    ModelRolledBack,
    RetrainRequested,
    SignalEmitted,
    TradeOutcome,
    TrainingFinished,
    TrainingStarted,
)

Handler = Callable[[Ctx, Any], None]


def _features_fact(ctx: Ctx, ev: FeatureBatch) -> None:
    if ev.release_id is not None:
        lifecycle.reference_batch(ctx, ev)


def _features_trigger(ctx: Ctx, ev: FeatureBatch) -> None:
    if ev.release_id is None:
        drift.on_features(ctx, ev)


_FACTS: dict[type, Handler] = {
    TrainingStarted: lifecycle.training_started,
    TrainingFinished: lifecycle.training_finished,
    ModelReleased: lifecycle.model_released,
    ModelPromoted: lifecycle.model_promoted,
    ModelRolledBack: lifecycle.model_rolled_back,
    FeatureBatch: _features_fact,
    RetrainRequested: manual.on_request,
}

_TRIGGERS: dict[type, Handler] = {
    MetricsReported: degradation.on_metrics,
    FeatureBatch: _features_trigger,
    SignalEmitted: drift.on_signal,
    TradeOutcome: drift.on_outcome,
    DriftReported: drift.on_reported,
}


def ignored(event: Event) -> bool:
    """True for events `decide` leaves alone (the core's own recorded outputs)."""
    return isinstance(event, DecisionMade)


def decide(
    state: State,
    event: Event,
    now_ns: int,
    config: Config | PolicyConfig,
    *,
    detectors: StreamDetectors | None = None,
) -> tuple[State, list[Command]]:
    """Apply ``event`` at time ``now_ns``; return the (same, updated) state and the outputs.

    ``state`` is updated in place (take ``state.to_bytes()`` first to keep the old one).
    ``detectors``: the streaming drift detector factories resolved once at start
    (`autoopt.core.detectors.from_plugins`); None: autoopt's built-in ones. A config naming a
    detector they lack is a ConfigError.
    """
    if not isinstance(state, State):
        raise TypeError(f"decide: state must be autoopt.core.State, got {type(state).__name__}")
    if not isinstance(event, Event):
        raise TypeError(f"decide: event must be an autoopt event, got {type(event).__name__}")
    resolved = resolve(config)
    detectors = detectors if detectors is not None else builtin_detectors()
    detectors.check(resolved.policy)
    if ignored(event):
        return state, []
    if isinstance(event, ClockTick):  # a pure clock move to the tick's instant (module doc)
        now_ns = min(int(now_ns), event.ts_event)
    data = state.data
    prev = data.clock_ns
    now = max(prev, int(now_ns))
    data.clock_ns = now
    data.n_events += 1
    ctx = Ctx(state, event, now, prev, resolved, detectors)
    symbols = data.symbols
    for name in resolved.symbols:
        if name not in symbols:
            ctx.sym(name)
    sym = getattr(event, "symbol", None)
    if isinstance(sym, str) and sym and sym not in symbols:
        ctx.sym(sym)
    kind = type(event)
    fact = _FACTS.get(kind)
    if fact is not None:
        fact(ctx, event)
    lifecycle.expire(ctx)
    manual.drain(ctx)
    schedule.check_schedules(ctx)
    trigger = _TRIGGERS.get(kind)
    if trigger is not None:
        trigger(ctx, event)
    return state, ctx.out


__all__ = ["decide", "ignored"]
