"""Why the champion of a symbol is what it is, from the log alone (`autoopt why`).

Why from the log: the log is the source of truth; the registry's files say what a release is,
but only the log says why it was made: the decision that asked for the retrain and its
evidence, the trials, the gate's numbers, the experiments it went through, and what happened
to it since. `read_story` reads the symbol's events (subject-filtered, up to ``--at``);
`explain` is a pure function of them, so a test or a report builds the same story from a list.

Order and time: events are taken in the order the log stored them and ``--at`` cuts at the
storage time, so the answer at T is what an operator reading the log at T could have known.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from autoopt.events import (
    DecisionMade,
    DriftReported,
    Event,
    ExperimentConcluded,
    ExperimentCreated,
    ModelPromoted,
    ModelReleased,
    ModelRolledBack,
    TrainingFinished,
    TrainingStarted,
    ValidationVerdict,
)

if TYPE_CHECKING:
    from autoopt.log import EventLog
    from autoopt.log.eventlog import Record

STORY_TYPES: tuple[type[Event], ...] = (
    TrainingStarted, TrainingFinished, ValidationVerdict, ModelReleased, ModelPromoted,
    ModelRolledBack, ExperimentCreated, ExperimentConcluded, DecisionMade, DriftReported,
)
"""The event types a story is built from."""

# The verdict metrics worth a line (the rest stay in --json).
GATE_KEYS = ("sharpe", "dsr", "psr", "expected_max_sr", "n_trades", "max_drawdown", "hit_rate",
             "n_trials", "trials_completed", "trials_pruned", "trials_failed")


def iso(ns: int) -> str:
    """UTC ISO-8601 to the second (``2026-05-01T03:00:00Z``)."""
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe numbers: NaN and infinities as None."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in values.items()}


class Trigger(msgspec.Struct, kw_only=True):
    """What asked for the retrain that made the release."""

    kind: str
    """``decision`` (the service's core decided it) or ``manual`` (an ``autoopt retrain`` run)."""
    reason: str = ""
    policy: str = ""
    decided_at: str = ""
    decision_id: str = ""
    evidence: dict[str, Any] = {}
    caused_by: str = ""
    """The id of the event the decision reacted to (a drift report, metrics, a tick...)."""


class Tried(msgspec.Struct, kw_only=True):
    """One challenger the run judged (the release's own verdict among them)."""

    challenger: str
    passed: bool
    sharpe: float | None = None
    dsr: float | None = None
    n_trials: int = 0
    reasons: list[str] = []


class Gate(msgspec.Struct, kw_only=True):
    passed: bool
    reasons: list[str]
    metrics: dict[str, float | None]
    champion: str | None
    champion_metrics: dict[str, float | None]
    n_trials: int
    deflated_sharpe: float | None
    decided_at: str


class Lineage(msgspec.Struct, kw_only=True):
    parent: str | None
    ancestors: list[str]
    """Parent, its parent... as far as the log knows (newest first)."""
    run_id: str | None
    trainer: str
    model_type: str
    data_start: str = ""
    data_end: str = ""
    rows: int | None = None
    features: list[str] = []
    params: dict[str, Any] = {}
    sha256: str = ""


class ExperimentNote(msgspec.Struct, kw_only=True):
    experiment: str
    variant: str
    created_at: str
    concluded_at: str = ""
    winner: str | None = None
    reason: str = ""


class Since(msgspec.Struct, kw_only=True):
    """What happened to the symbol after the champion took over."""

    drift_readings: int = 0
    drifted: int = 0
    last_drift: dict[str, Any] = {}
    decisions: dict[str, int] = {}
    """Count by ``kind/reason`` (``retrain/drift.psi``, ``held/held.degradation``...)."""
    degradations: int = 0
    refusals: int = 0
    """Verdicts that kept this champion (challengers refused)."""
    last_refusal: dict[str, Any] = {}
    refusal_streak: int = 0
    """Refusals since the last passing verdict (the current streak)."""
    rollbacks: int = 0
    recent: list[str] = []
    """The latest few facts as lines, newest last."""


class Explanation(msgspec.Struct, kw_only=True):
    symbol: str
    at: str
    champion: str | None
    since: str = ""
    how: str = ""
    """``promoted`` / ``rolled back`` / ``released`` (no promotion recorded) / "" (none)."""
    how_reason: str = ""
    trigger: Trigger | None = None
    tried: list[Tried] = []
    gate: Gate | None = None
    lineage: Lineage | None = None
    experiments: list[ExperimentNote] = []
    after: Since = msgspec.field(default_factory=Since)
    releases: int = 0
    """Releases of the symbol in the log up to ``at``."""


async def read_story(
    event_log: EventLog, symbol: str, *, at_ns: int | None = None
) -> list[Record]:
    """The symbol's story events stored up to ``at_ns`` (all when None), in log order per
    stream, then merged by storage time."""
    from autoopt.logquery import matches, replay_targets

    end = None if at_ns is None else dt.datetime.fromtimestamp(at_ns / 1e9, tz=dt.UTC)
    out: list[Record] = []
    for target in replay_targets(STORY_TYPES, symbol):
        async for rec in event_log.replay_records(target, end_time=end):
            if matches(rec.event, symbol) or _in_experiment(rec.event, symbol):
                out.append(rec)
    out.sort(key=lambda r: (r.time_ns, r.seq))
    return out


def _in_experiment(event: Event, symbol: str) -> bool:
    return isinstance(event, ExperimentCreated) and event.symbol in (symbol, "*")


def _f(metrics: dict[str, float], key: str) -> float | None:
    v = metrics.get(key)
    return float(v) if v is not None and math.isfinite(v) else None


def explain(records: Sequence[Record], symbol: str, at_ns: int,
            release: str | None = None) -> Explanation:
    """The story of ``symbol``'s champion at ``at_ns`` from its events (see `read_story`);
    with ``release``, the story of that release instead (since it last took over, or since it
    was released if it never served)."""
    events = [r for r in records if r.time_ns <= at_ns]
    stored = {r.event.event_id: r.time_ns for r in events}
    released: dict[str, ModelReleased] = {}
    verdict_of: dict[str, ValidationVerdict] = {}
    decisions: dict[str, DecisionMade] = {}
    started: dict[tuple[str, str], TrainingStarted] = {}
    finished: dict[tuple[str, str], TrainingFinished] = {}
    champion: str | None = None
    champion_at = 0
    how = how_reason = ""
    took_over: dict[str, tuple[int, str, str]] = {}
    for rec in events:
        e = rec.event
        if isinstance(e, ModelReleased):
            released[e.release_id] = e
            if champion is None or how == "released":
                champion, champion_at, how, how_reason = e.release_id, rec.time_ns, "released", ""
        elif isinstance(e, ModelPromoted):
            champion, champion_at, how, how_reason = e.release_id, rec.time_ns, "promoted", e.reason
        elif isinstance(e, ModelRolledBack):
            champion, champion_at = e.release_id, rec.time_ns
            how, how_reason = "rolled back", f"from {e.from_release_id}: {e.reason}"
        elif isinstance(e, ValidationVerdict):
            verdict_of[e.challenger] = e
        if champion is not None and (champion not in took_over or how != "released"):
            if isinstance(e, ModelReleased | ModelPromoted | ModelRolledBack) and \
                    getattr(e, "release_id", None) == champion:
                took_over[champion] = (champion_at, how, how_reason)
        elif isinstance(e, DecisionMade):
            decisions[e.event_id] = e
        elif isinstance(e, TrainingStarted):
            started[(e.run_id, e.trainer)] = e
        elif isinstance(e, TrainingFinished):
            finished[(e.run_id, e.trainer)] = e
    if release is not None:
        champion = release if release in released else None
        if champion is not None:
            champion_at, how, how_reason = took_over.get(
                champion, (stored.get(released[champion].event_id, 0), "released", ""))
    out = Explanation(symbol=symbol, at=iso(at_ns), champion=champion, releases=len(released))
    if champion is None:
        out.after = _since(events, 0)
        return out
    out.since, out.how, out.how_reason = iso(champion_at), how, how_reason
    rel = released.get(champion)
    verdict = verdict_of.get(champion)
    if verdict is not None:
        out.gate = Gate(
            passed=verdict.passed, reasons=list(verdict.reasons),
            metrics=_clean({k: verdict.metrics[k] for k in GATE_KEYS if k in verdict.metrics}),
            champion=verdict.champion,
            champion_metrics=_clean({k: verdict.champion_metrics[k] for k in GATE_KEYS
                                     if k in verdict.champion_metrics}),
            n_trials=verdict.n_trials, deflated_sharpe=verdict.deflated_sharpe,
            decided_at=iso(stored.get(verdict.event_id, verdict.ts_event)),
        )
        out.trigger = _trigger(verdict, decisions, stored)
        # the same run's other verdicts: everything it tried (by correlation: one run, one chain)
        out.tried = [
            Tried(challenger=v.challenger, passed=v.passed, sharpe=_f(v.metrics, "sharpe"),
                  dsr=_f(v.metrics, "dsr"), n_trials=v.n_trials, reasons=list(v.reasons))
            for v in verdict_of.values()
            if v.correlation_id is not None and v.correlation_id == verdict.correlation_id
        ]
    if rel is not None:
        run = started.get((rel.run_id or "", rel.trainer)) or next(
            (s for (rid, _), s in started.items() if rid == rel.run_id), None)
        ancestors: list[str] = []
        parent = rel.parent
        while parent is not None and parent not in ancestors and len(ancestors) < 20:
            ancestors.append(parent)
            parent = released[parent].parent if parent in released else None
        rows = run.params.get("rows") if run is not None else None
        out.lineage = Lineage(
            parent=rel.parent, ancestors=ancestors, run_id=rel.run_id, trainer=rel.trainer,
            model_type=rel.model_type,
            data_start=iso(run.data_start) if run is not None and run.data_start else "",
            data_end=iso(run.data_end) if run is not None and run.data_end else "",
            rows=rows if isinstance(rows, int) else None,
            features=list(rel.features), params=dict(rel.params), sha256=rel.sha256,
        )
    out.experiments = _experiments(events, champion)
    out.after = _since(events, champion_at)
    return out


def _trigger(verdict: ValidationVerdict, decisions: dict[str, DecisionMade],
             stored: dict[str, int]) -> Trigger:
    for key in (verdict.causation_id, verdict.correlation_id):
        d = decisions.get(key or "")
        if d is not None:
            return Trigger(
                kind="decision", reason=d.reason, policy=d.policy,
                decided_at=iso(stored.get(d.event_id, d.ts_event)), decision_id=d.event_id,
                evidence=dict(d.details), caused_by=d.causation_id or "",
            )
    return Trigger(kind="manual", reason="autoopt retrain (no decision of the service)")


def _experiments(events: Iterable[Record], release: str) -> list[ExperimentNote]:
    notes: dict[str, ExperimentNote] = {}
    for rec in events:
        e = rec.event
        if isinstance(e, ExperimentCreated):
            for v in e.variants:
                if v.release_id == release:
                    notes[e.experiment] = ExperimentNote(
                        experiment=e.experiment, variant=v.name, created_at=iso(rec.time_ns))
        elif isinstance(e, ExperimentConcluded) and e.experiment in notes:
            n = notes[e.experiment]
            n.concluded_at, n.winner, n.reason = iso(rec.time_ns), e.winner, e.reason
    return list(notes.values())


def _since(events: Iterable[Record], after_ns: int) -> Since:
    s = Since()
    recent: list[str] = []
    for rec in events:
        if rec.time_ns < after_ns:
            continue
        e = rec.event
        when = iso(rec.time_ns)
        if isinstance(e, DriftReported):
            s.drift_readings += 1
            if e.drifted:
                s.drifted += 1
                s.last_drift = {"at": when, "detector": e.detector, "statistic": e.statistic,
                                "stream": e.stream, "feature": e.feature, "value": e.value,
                                "threshold": e.threshold}
                recent.append(f"{when} drift: {e.statistic} {e.value:.4g} > {e.threshold:.4g} "
                              f"({e.stream}{'/' + e.feature if e.feature else ''})")
        elif isinstance(e, DecisionMade):
            key = f"{e.kind}/{e.reason}"
            s.decisions[key] = s.decisions.get(key, 0) + 1
            if "degradation" in e.reason and e.kind == "retrain":
                s.degradations += 1
            if e.kind == "retrain":
                recent.append(f"{when} decided retrain: {e.reason}")
        elif isinstance(e, ValidationVerdict) and rec.time_ns > after_ns:
            if e.passed:
                s.refusal_streak = 0
            else:
                s.refusals += 1
                s.refusal_streak += 1
                s.last_refusal = {"at": when, "challenger": e.challenger,
                                  "reasons": list(e.reasons)}
                first = e.reasons[0] if e.reasons else "refused"
                recent.append(f"{when} refused {e.challenger}: {first}")
        elif isinstance(e, ModelRolledBack):
            s.rollbacks += 1
            recent.append(f"{when} rolled back {e.from_release_id} -> {e.release_id}: {e.reason}")
    s.recent = recent[-8:]
    return s


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_lines(x: Explanation) -> list[str]:
    """The explanation as plain lines for a terminal (no markup)."""
    lines = [f"{x.symbol} at {x.at}"]
    if x.champion is None:
        lines.append("  no champion: the log holds no release of this symbol up to then")
        return lines
    lines.append(f"  champion {x.champion} since {x.since} ({x.how}"
                 + (f": {x.how_reason}" if x.how_reason else "") + ")")
    t = x.trigger
    if t is not None:
        lines.append("trigger")
        if t.kind == "decision":
            lines.append(f"  decided {t.decided_at}: retrain because {t.reason}"
                         + (f" (policy {t.policy})" if t.policy else ""))
            if t.evidence:
                lines.append("  evidence: " + ", ".join(f"{k}={_num(v)}" for k, v in t.evidence.items()))
            if t.caused_by:
                lines.append(f"  reacting to event {t.caused_by}")
        else:
            lines.append(f"  {t.reason}")
    if x.tried:
        lines.append("tried")
        for tr in x.tried:
            verdict = "released" if tr.passed else "refused"
            lines.append(f"  {tr.challenger}: {verdict}, sharpe {_num(tr.sharpe)}, dsr "
                         f"{_num(tr.dsr)}, {tr.n_trials} trials")
    g = x.gate
    if g is not None:
        lines.append(f"gate ({g.decided_at}): {'passed' if g.passed else 'refused'}")
        lines.append("  challenger: " + ", ".join(f"{k} {_num(v)}" for k, v in g.metrics.items()))
        if g.champion:
            lines.append(f"  against champion {g.champion}: "
                         + ", ".join(f"{k} {_num(v)}" for k, v in g.champion_metrics.items()))
        else:
            lines.append("  against no champion (first release)")
        for r in g.reasons:
            lines.append(f"  - {r}")
    li = x.lineage
    if li is not None:
        lines.append("lineage")
        lines.append(f"  parent {li.parent or '-'}" + (
            f" (ancestors: {' <- '.join(li.ancestors)})" if len(li.ancestors) > 1 else ""))
        lines.append(f"  run {li.run_id or '-'}, trainer {li.trainer or li.model_type}, data "
                     f"{li.data_start or '?'} .. {li.data_end or '?'}"
                     + (f", {li.rows} rows" if li.rows is not None else ""))
        lines.append(f"  features ({len(li.features)}): {', '.join(li.features)}")
        if li.params:
            lines.append("  params: " + ", ".join(f"{k}={_num(v)}" for k, v in li.params.items()))
    if x.experiments:
        lines.append("experiments")
        for n in x.experiments:
            end = (f"concluded {n.concluded_at}: winner {n.winner or 'none'} ({n.reason})"
                   if n.concluded_at else "running")
            lines.append(f"  {n.experiment} as {n.variant} (from {n.created_at}): {end}")
    a = x.after
    lines.append("since then")
    lines.append(f"  drift: {a.drifted} of {a.drift_readings} readings drifted; refusals: "
                 f"{a.refusals} (streak {a.refusal_streak}); rollbacks: {a.rollbacks}; "
                 f"degradation retrains: {a.degradations}")
    if a.decisions:
        lines.append("  decisions: " + ", ".join(f"{k} x{v}" for k, v in sorted(a.decisions.items())))
    for r in a.recent:
        lines.append(f"  {r}")
    return lines


__all__ = [
    "Explanation",
    "STORY_TYPES",
    "explain",
    "iso",
    "read_story",
    "render_lines",
]
