"""Which events become alerts: pure functions of the events and a small state.

Rules (names as in ``alerts.rules``)
    ``release``         a model was promoted (released, with ``policy.champion_event =
                        "released"``, where nothing promotes)                   info
    ``rollback``        the champion was rolled back                            warning
    ``refusal_streak``  ``alerts.refusal_streak`` challengers of a symbol refused in a row
                        (again at every further multiple)                        warning
    ``drift``           a drift reading over its threshold                       warning
    ``guardrail``       an experiment stopped by a guardrail                     warning
    ``dead_letter``     a consumer dead-lettered a message                       warning
    ``service_error``   a component reported an error                            critical

Throttling: an alert of a rule and scope (symbol, stream, component) is not raised again
within ``alerts.cooldown_s`` of the last one (a storm of dead letters is one alert an hour,
with the count since in its details). Releases, rollbacks and streaks are never throttled.
Ids derive from (rule, cause event), so a replay or a second instance stores an alert once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autoopt.events import (
    AlertRaised,
    DeadLettered,
    DriftReported,
    ErrorRaised,
    Event,
    ExperimentConcluded,
    ModelPromoted,
    ModelReleased,
    ModelRolledBack,
    ValidationVerdict,
)
from autoopt.ids import derived_event_id

RULES = ("release", "rollback", "refusal_streak", "drift", "guardrail", "dead_letter",
         "service_error")
SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}
_THROTTLED = frozenset({"drift", "dead_letter", "service_error", "guardrail"})


@dataclass
class RuleState:
    """What the rules remember between events (rebuilt by folding the log's history)."""

    streak: dict[str, int] = field(default_factory=dict)
    last_sent: dict[tuple[str, str], int] = field(default_factory=dict)
    suppressed: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleSettings:
    enabled: tuple[str, ...] = RULES
    refusal_streak: int = 3
    cooldown_s: float = 3600.0
    champion_event: str = "promoted"
    """Which event makes a champion (``policy.champion_event``): the one ``release`` alerts on."""


def _alert(rule: str, severity: str, title: str, text: str, cause: Event, *, symbol: str = "",
           details: dict[str, Any] | None = None, at_ns: int) -> AlertRaised:
    return AlertRaised(
        event_id=derived_event_id(cause.event_id, f"alert/{rule}"), ts_event=at_ns,
        ts_init=at_ns, causation_id=cause.event_id,
        correlation_id=cause.correlation_id or cause.event_id, rule=rule, severity=severity,
        title=title, text=text, symbol=symbol, cause_id=cause.event_id, details=details or {},
    )


def evaluate(state: RuleState, e: Event, at_ns: int, settings: RuleSettings) -> list[AlertRaised]:
    """The alerts ``e`` raises (stored at ``at_ns``); updates ``state``."""
    out: list[AlertRaised] = []
    on = settings.enabled

    def throttled(rule: str, scope: str) -> bool:
        key = (rule, scope)
        last = state.last_sent.get(key)
        if rule in _THROTTLED and last is not None and \
                at_ns - last < settings.cooldown_s * 1e9:
            state.suppressed[key] = state.suppressed.get(key, 0) + 1
            return True
        state.last_sent[key] = at_ns
        return False

    def since(rule: str, scope: str) -> dict[str, Any]:
        n = state.suppressed.pop((rule, scope), 0)
        return {"suppressed_since_last": n} if n else {}

    if isinstance(e, ModelPromoted) and settings.champion_event == "promoted":
        if "release" in on:
            prev = f" (was {e.previous_release_id})" if e.previous_release_id else ""
            out.append(_alert("release", "info", f"{e.symbol}: new champion {e.release_id}",
                              f"{e.symbol} promoted {e.release_id}{prev}: {e.reason}", e,
                              symbol=e.symbol, at_ns=at_ns,
                              details={"release_id": e.release_id,
                                       "previous": e.previous_release_id}))
    elif isinstance(e, ModelReleased) and settings.champion_event == "released" and \
            "release" in on:
        out.append(_alert("release", "info", f"{e.symbol}: released {e.release_id}",
                          f"{e.symbol} released {e.release_id} ({e.trainer or e.model_type})",
                          e, symbol=e.symbol, at_ns=at_ns, details={"release_id": e.release_id}))
    elif isinstance(e, ModelRolledBack) and "rollback" in on:
        out.append(_alert("rollback", "warning", f"{e.symbol}: rolled back to {e.release_id}",
                          f"{e.symbol} rolled back from {e.from_release_id} to {e.release_id}: "
                          f"{e.reason}", e, symbol=e.symbol, at_ns=at_ns,
                          details={"from": e.from_release_id, "to": e.release_id}))
    elif isinstance(e, ValidationVerdict):
        n = 0 if e.passed else state.streak.get(e.symbol, 0) + 1
        state.streak[e.symbol] = n
        if n and n % max(1, settings.refusal_streak) == 0 and "refusal_streak" in on:
            why = next((r for r in e.reasons if r.split(":", 1)[0] not in
                        ("no_champion", "dsr_pass", "min_trades_met")), "")
            out.append(_alert("refusal_streak", "warning",
                              f"{e.symbol}: {n} challengers refused in a row",
                              f"{e.symbol}: the gate refused {n} challengers in a row; the "
                              f"champion {e.champion or '(none)'} stays. Last: {why}", e,
                              symbol=e.symbol, at_ns=at_ns,
                              details={"streak": n, "champion": e.champion,
                                       "last_challenger": e.challenger}))
    elif isinstance(e, DriftReported) and e.drifted and "drift" in on:
        scope = e.symbol
        if not throttled("drift", scope):
            what = f"{e.statistic} {e.value:.4g} > {e.threshold:.4g} on {e.stream}" + (
                f"/{e.feature}" if e.feature else "")
            out.append(_alert("drift", "warning", f"{e.symbol}: drift ({e.statistic})",
                              f"{e.symbol}: {what}", e, symbol=e.symbol, at_ns=at_ns,
                              details={"statistic": e.statistic, "value": e.value,
                                       "threshold": e.threshold, "stream": e.stream,
                                       "feature": e.feature} | since("drift", scope)))
    elif isinstance(e, ExperimentConcluded) and "guardrail" in e.reason.lower() and \
            "guardrail" in on:
        if not throttled("guardrail", e.experiment):
            out.append(_alert("guardrail", "warning", f"experiment {e.experiment}: guardrail",
                              f"{e.experiment} stopped: {e.reason}", e, at_ns=at_ns,
                              details={"experiment": e.experiment, "winner": e.winner}))
    elif isinstance(e, DeadLettered) and "dead_letter" in on:
        if not throttled("dead_letter", e.stream):
            out.append(_alert("dead_letter", "warning", f"dead letter from {e.stream}",
                              f"{e.consumer} gave up on {e.subject} ({e.stream} seq {e.seq}): "
                              f"{e.error}", e, at_ns=at_ns,
                              details={"stream": e.stream, "subject": e.subject,
                                       "consumer": e.consumer} | since("dead_letter", e.stream)))
    elif isinstance(e, ErrorRaised) and "service_error" in on:
        if not throttled("service_error", e.component):
            out.append(_alert("service_error", "critical", f"{e.component}: {e.error_type}",
                              f"{e.component} failed: {e.error_type}: {e.message}", e,
                              at_ns=at_ns, details={"component": e.component}
                              | since("service_error", e.component)))
    return out


WATCHED: tuple[type[Event], ...] = (
    ModelPromoted, ModelReleased, ModelRolledBack, ValidationVerdict, DriftReported,
    ExperimentConcluded, DeadLettered, ErrorRaised,
)
"""The event types the rules read."""


__all__ = ["RULES", "SEVERITY_ORDER", "WATCHED", "RuleSettings", "RuleState", "evaluate"]
