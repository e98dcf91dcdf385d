"""What the dashboard shows, folded from the log: champions with their age, live vs expected
figures and drift; running jobs with progress; recent decisions and verdicts with their
reasons; experiments; dead letters; alerts and errors.

Why a projection of its own: the page must render in milliseconds however long the log is
(10k decisions, 100 releases), so `DashboardState.apply` keeps only what a page shows (latest
per key, bounded recent lists, counts) and the page is built from it without reading the log.
Pure: `apply` takes a stored event and the time the log stored it; the feed
(`autoopt.service.dashboard`) reads the log and calls it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from autoopt.events import (
    AlertRaised,
    DeadLettered,
    DecisionMade,
    DriftReported,
    ErrorRaised,
    Event,
    ExperimentConcluded,
    ExperimentCreated,
    ExperimentPaused,
    ExperimentStarted,
    JobProgress,
    MetricsReported,
    ModelPromoted,
    ModelReleased,
    ModelRolledBack,
    TrainingFinished,
    TrainingStarted,
    ValidationVerdict,
)
from autoopt.ids import derived_event_id

DASHBOARD_TYPES: tuple[type[Event], ...] = (
    ModelReleased, ModelPromoted, ModelRolledBack, ValidationVerdict, DecisionMade,
    TrainingStarted, TrainingFinished, JobProgress, MetricsReported, DriftReported,
    ExperimentCreated, ExperimentStarted, ExperimentPaused, ExperimentConcluded, DeadLettered,
    AlertRaised, ErrorRaised,
)
"""The event types the dashboard folds (bars, trials, signals and ticks are not read)."""

RECENT = 50


@dataclass
class Champion:
    symbol: str
    release_id: str
    since_ns: int
    how: str
    trainer: str = ""
    run_id: str | None = None
    expected: dict[str, float] = field(default_factory=dict)
    live: dict[str, float] = field(default_factory=dict)
    live_at_ns: int = 0
    drift: DriftReported | None = None
    drift_at_ns: int = 0
    refusal_streak: int = 0


@dataclass
class JobView:
    job: str
    symbol: str
    model: str
    stage: str = "started"
    done: int = 0
    total: int = 0
    started_ns: int = 0
    updated_ns: int = 0


@dataclass
class Fact:
    """One line of the recent list: a decision or a verdict, with a link target."""

    at_ns: int
    symbol: str
    kind: str
    text: str
    link: str = ""


@dataclass
class ExperimentView:
    name: str
    symbol: str
    status: str
    variants: list[str]
    champion: str
    winner: str | None = None
    reason: str = ""
    updated_ns: int = 0


class DashboardState:
    """The folded view; `version` counts the events applied (the page polls it)."""

    def __init__(self) -> None:
        self.version = 0
        self.champions: dict[str, Champion] = {}
        self.releases: dict[str, ModelReleased] = {}
        self.expected: dict[str, dict[str, float]] = {}  # release id -> verdict metrics
        self.jobs: dict[tuple[str, str, str], JobView] = {}
        self.recent: deque[Fact] = deque(maxlen=RECENT)
        self.counts: dict[str, int] = {}  # decision kind/reason -> count
        self.n_decisions = 0
        self.n_releases = 0
        self.n_refusals = 0
        self.experiments: dict[str, ExperimentView] = {}
        self.dead_letters: dict[str, int] = {}  # origin stream -> count
        self.recent_letters: deque[tuple[int, DeadLettered]] = deque(maxlen=10)
        self.alerts: deque[tuple[int, AlertRaised]] = deque(maxlen=20)
        self.errors: deque[tuple[int, ErrorRaised]] = deque(maxlen=10)
        self.timeline: deque[tuple[int, str]] = deque(maxlen=200_000)
        self.durations: dict[tuple[str, str], float] = {}  # (symbol, model) -> last job, s
        self.trainings: dict[str, int] = {"succeeded": 0, "failed": 0}
        self._verdict_runs: dict[str, str] = {}  # expected verdict id -> run id
        self._streak: dict[str, int] = {}

    def apply(self, e: Event, at_ns: int) -> None:
        """Fold one stored event (``at_ns``: when the log stored it)."""
        self.version += 1
        handler = _HANDLERS.get(type(e))
        if handler is not None:
            handler(self, e, at_ns)
        what = _NOTABLE.get(type(e))
        if what is not None and (what != "retrain" or getattr(e, "kind", "") == "retrain"):
            if what == "verdict":
                what = "release" if getattr(e, "passed", False) else "refusal"
            self.timeline.append((at_ns, what))

    def since(self, start_ns: int) -> dict[str, int]:
        """How many releases, refusals, rollbacks, retrains decided, alerts, dead letters and
        errors the log stored since ``start_ns`` (what happened while you were away)."""
        out: dict[str, int] = {}
        for at, what in reversed(self.timeline):
            if at < start_ns:
                break
            out[what] = out.get(what, 0) + 1
        return out

    # ---------------------------------------------------------------- handlers

    def _released(self, e: ModelReleased, at: int) -> None:
        self.releases[e.release_id] = e
        self.n_releases += 1
        if e.symbol not in self.champions:
            self._take_over(e.symbol, e.release_id, at, "released")

    def _take_over(self, symbol: str, release_id: str, at: int, how: str) -> None:
        rel = self.releases.get(release_id)
        old = self.champions.get(symbol)
        self.champions[symbol] = Champion(
            symbol=symbol, release_id=release_id, since_ns=at, how=how,
            trainer=rel.trainer or rel.model_type if rel else "",
            run_id=rel.run_id if rel else None,
            expected=dict(self.expected.get(release_id, rel.metrics if rel else {})),
            drift=old.drift if old else None, drift_at_ns=old.drift_at_ns if old else 0,
            refusal_streak=self._streak.get(symbol, 0),
        )

    def _promoted(self, e: ModelPromoted, at: int) -> None:
        self._take_over(e.symbol, e.release_id, at, "promoted")

    def _rolled_back(self, e: ModelRolledBack, at: int) -> None:
        self._take_over(e.symbol, e.release_id, at, "rolled back")
        self.recent.append(Fact(at, e.symbol, "rollback",
                                f"rolled back {e.from_release_id} -> {e.release_id}: {e.reason}"))

    def _verdict(self, e: ValidationVerdict, at: int) -> None:
        self.expected[e.challenger] = dict(e.metrics)
        run = self._verdict_runs.get(e.event_id, "")
        sharpe = e.metrics.get("sharpe")
        figures = f"Sharpe {sharpe:.3g}, " if sharpe is not None else ""
        figures += f"DSR {e.deflated_sharpe:.3g}" if e.deflated_sharpe is not None else ""
        if e.passed:
            self._streak[e.symbol] = 0
            text = f"released {e.challenger} ({figures})"
        else:
            self.n_refusals += 1
            self._streak[e.symbol] = self._streak.get(e.symbol, 0) + 1
            why = next((r for r in e.reasons if not r.startswith(("no_champion", "dsr_pass",
                                                                   "min_trades_met"))),
                       e.reasons[0] if e.reasons else "")
            text = f"refused {e.challenger} ({figures}): {why}"
        champ = self.champions.get(e.symbol)
        if champ is not None:
            champ.refusal_streak = self._streak[e.symbol]
        self.recent.append(Fact(at, e.symbol, "verdict", text,
                                f"/reports/retrain?id={quote(run)}" if run else ""))

    def _decision(self, e: DecisionMade, at: int) -> None:
        self.n_decisions += 1
        key = f"{e.kind}/{e.reason}"
        self.counts[key] = self.counts.get(key, 0) + 1
        if e.kind in ("retrain", "expired") or e.kind.startswith("ab."):
            detail = ", ".join(f"{k}={v}" for k, v in list(e.details.items())[:4])
            self.recent.append(Fact(at, e.symbol, e.kind,
                                    f"{e.kind}: {e.reason}" + (f" ({detail})" if detail else "")))

    def _started(self, e: TrainingStarted, at: int) -> None:
        self._verdict_runs[derived_event_id(e.run_id, f"{e.symbol}/{e.trainer}/model.verdict")] = \
            e.run_id
        self.jobs[(e.run_id, e.symbol, e.trainer)] = JobView(
            e.run_id, e.symbol, e.trainer, total=e.n_trials + 4, started_ns=at, updated_ns=at)

    def _finished(self, e: TrainingFinished, at: int) -> None:
        self.jobs.pop((e.run_id, e.symbol, e.trainer), None)
        self.durations[(e.symbol, e.trainer)] = e.duration_s
        self.trainings["succeeded" if e.succeeded else "failed"] += 1
        if not e.succeeded:
            self.recent.append(Fact(at, e.symbol, "failed", f"retrain failed: {e.error}",
                                    f"/reports/retrain?id={quote(e.run_id)}"))

    def _progress(self, e: JobProgress, at: int) -> None:
        key = (e.job, e.symbol, e.model)
        if e.finished:
            self.jobs.pop(key, None)
            return
        view = self.jobs.get(key)
        if view is None:
            view = self.jobs[key] = JobView(e.job, e.symbol, e.model, started_ns=at)
        view.stage, view.done, view.total, view.updated_ns = e.stage, e.done, e.total, at

    def _metrics(self, e: MetricsReported, at: int) -> None:
        champ = self.champions.get(e.symbol)
        if champ is not None and (e.release_id in (None, champ.release_id)):
            champ.live = dict(e.metrics)
            champ.live_at_ns = at

    def _drift(self, e: DriftReported, at: int) -> None:
        champ = self.champions.get(e.symbol)
        if champ is not None and (e.drifted or champ.drift is None or not champ.drift.drifted):
            champ.drift, champ.drift_at_ns = e, at

    def _exp_created(self, e: ExperimentCreated, at: int) -> None:
        self.experiments[e.experiment] = ExperimentView(
            e.experiment, e.symbol, "draft", [f"{v.name}={v.release_id}" for v in e.variants],
            e.champion or e.variants[0].name, updated_ns=at)

    def _exp_status(self, e: Event, at: int) -> None:
        view = self.experiments.get(getattr(e, "experiment", ""))
        if view is None:
            return
        view.updated_ns = at
        if isinstance(e, ExperimentStarted):
            view.status = "running"
        elif isinstance(e, ExperimentPaused):
            view.status = "paused"
        elif isinstance(e, ExperimentConcluded):
            view.status, view.winner, view.reason = "concluded", e.winner, e.reason

    def _letter(self, e: DeadLettered, at: int) -> None:
        self.dead_letters[e.stream] = self.dead_letters.get(e.stream, 0) + 1
        self.recent_letters.append((at, e))

    def _alert(self, e: AlertRaised, at: int) -> None:
        self.alerts.append((at, e))

    def _error(self, e: ErrorRaised, at: int) -> None:
        self.errors.append((at, e))

    def summary(self) -> dict[str, Any]:
        """Counts for /metrics-like checks and tests."""
        return {"version": self.version, "champions": len(self.champions),
                "decisions": self.n_decisions, "releases": self.n_releases,
                "refusals": self.n_refusals, "jobs": len(self.jobs),
                "dead_letters": sum(self.dead_letters.values()), "alerts": len(self.alerts)}


_NOTABLE: dict[type[Event], str] = {
    ValidationVerdict: "verdict", ModelRolledBack: "rollback", DecisionMade: "retrain",
    AlertRaised: "alert", DeadLettered: "dead letter", ErrorRaised: "error",
}

_HANDLERS: dict[type[Event], Any] = {
    ModelReleased: DashboardState._released,
    ModelPromoted: DashboardState._promoted,
    ModelRolledBack: DashboardState._rolled_back,
    ValidationVerdict: DashboardState._verdict,
    DecisionMade: DashboardState._decision,
    TrainingStarted: DashboardState._started,
    TrainingFinished: DashboardState._finished,
    JobProgress: DashboardState._progress,
    MetricsReported: DashboardState._metrics,
    DriftReported: DashboardState._drift,
    ExperimentCreated: DashboardState._exp_created,
    ExperimentStarted: DashboardState._exp_status,
    ExperimentPaused: DashboardState._exp_status,
    ExperimentConcluded: DashboardState._exp_status,
    DeadLettered: DashboardState._letter,
    AlertRaised: DashboardState._alert,
    ErrorRaised: DashboardState._error,
}


__all__ = ["DASHBOARD_TYPES", "Champion", "DashboardState", "ExperimentView", "Fact", "JobView"]
