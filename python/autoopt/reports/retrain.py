"""The retrain report: one offline page per run that shows why each challenger was released or
refused (`autoopt report retrain RUN_ID`, `autoopt retrain --report PATH.html`).

Everything comes from the log: `TrainingStarted`/`TrainingFinished` (data, trials, feature
importances), `TrialCompleted` (the Optuna history), `ValidationVerdict` (the gate's numbers),
`RetrainEvaluated` (per-fold metrics and the out-of-sample paths of challenger and champion on
the same folds) and `ModelReleased`. `read_run` collects them; `build_retrain_report` is pure.

Order of the page, most decisive first: the verdict of every job in one table; then per job
the gate's numbers and reasons, equity and drawdown of challenger vs champion, per-fold
metrics, feature importances and their stability across the symbol's releases, the Optuna
history and which parameters mattered.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autoopt.errors import ConfigError
from autoopt.events import (
    Event,
    ModelReleased,
    RetrainEvaluated,
    TrainingFinished,
    TrainingStarted,
    TrialCompleted,
    ValidationVerdict,
)
from autoopt.ids import derived_event_id
from autoopt.reports.html import (
    Column,
    Report,
    drawdown_figure,
    equity_figure,
    paragraphs,
    percent,
    plot_text,
    series_color,
    table_html,
)
from autoopt.reports.lineage import iso

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from autoopt.log import EventLog

IMPORTANCE_PREFIX = "importance/"


@dataclass
class Job:
    """One (symbol, model) job of a run, as the log recorded it."""

    symbol: str
    model: str
    started: TrainingStarted | None = None
    finished: TrainingFinished | None = None
    verdict: ValidationVerdict | None = None
    evaluation: RetrainEvaluated | None = None
    release: ModelReleased | None = None
    trials: list[TrialCompleted] = field(default_factory=list)
    history: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    """(release id, feature importances) of the symbol's releases up to this run, oldest first."""

    @property
    def importances(self) -> dict[str, float]:
        m = self.finished.metrics if self.finished is not None else {}
        return {k[len(IMPORTANCE_PREFIX):]: float(v) for k, v in m.items()
                if k.startswith(IMPORTANCE_PREFIX)}


@dataclass
class RunRecord:
    run_id: str
    jobs: list[Job]


def collect_run(run_id: str, events: Sequence[Event]) -> RunRecord:
    """The run's jobs from events in log order (pure: `read_run` feeds it from the log)."""
    jobs: dict[tuple[str, str], Job] = {}
    runs_of_release: dict[str, tuple[str, str]] = {}
    importances_of_run: dict[tuple[str, str, str], dict[str, float]] = {}
    verdict_ids: dict[str, tuple[str, str]] = {}
    releases: list[ModelReleased] = []

    def job(symbol: str, model: str) -> Job:
        key = (symbol, model)
        if key not in jobs:
            jobs[key] = Job(symbol, model)
            verdict_ids[derived_event_id(run_id, f"{symbol}/{model}/model.verdict")] = key
        return jobs[key]

    for e in events:
        if isinstance(e, TrainingStarted) and e.run_id == run_id:
            job(e.symbol, e.trainer).started = e
        elif isinstance(e, TrainingFinished):
            imp = {k[len(IMPORTANCE_PREFIX):]: float(v) for k, v in e.metrics.items()
                   if k.startswith(IMPORTANCE_PREFIX)}
            importances_of_run[(e.run_id, e.symbol, e.trainer)] = imp
            if e.run_id == run_id:
                job(e.symbol, e.trainer).finished = e
        elif isinstance(e, TrialCompleted) and e.run_id == run_id:
            parts = e.study.rsplit(".", 2)  # "<symbol>.<model>.<digest>" (`study_name`)
            job(e.symbol, parts[1] if len(parts) == 3 else "").trials.append(e)
        elif isinstance(e, RetrainEvaluated) and e.run_id == run_id:
            job(e.symbol, e.model).evaluation = e
        elif isinstance(e, ValidationVerdict) and e.event_id in verdict_ids:
            jobs[verdict_ids[e.event_id]].verdict = e
        elif isinstance(e, ModelReleased):
            releases.append(e)
            if e.run_id:
                runs_of_release[e.release_id] = (e.run_id, e.trainer)
    for rel in releases:
        if rel.run_id == run_id and (rel.symbol, rel.trainer) in jobs:
            jobs[(rel.symbol, rel.trainer)].release = rel
    for j in jobs.values():
        for rel in releases:
            if rel.symbol != j.symbol:
                continue
            rid, trainer = runs_of_release.get(rel.release_id, ("", ""))
            imp = importances_of_run.get((rid, rel.symbol, trainer))
            if imp:
                j.history.append((rel.release_id, imp))
            if rel.run_id == run_id:
                break
    return RunRecord(run_id, list(jobs.values()))


async def read_run(event_log: EventLog, run_id: str) -> RunRecord:
    """The run's events from the log; ConfigError naming the run when the log has none."""
    from autoopt.logquery import replay_targets

    types = (TrainingStarted, TrainingFinished, TrialCompleted, ValidationVerdict,
             ModelReleased, RetrainEvaluated)
    events: list[Event] = []
    for target in replay_targets(types):
        async for e in event_log.replay(target):
            events.append(e)
    record = collect_run(run_id, events)
    if not record.jobs:
        raise ConfigError(f"run {run_id!r}: no training of that run in the log "
                          "(see autoopt log replay --type training.started)")
    return record


# ------------------------------------------------------------------------------- figures


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _bar_figure(title: str, labels: Sequence[str], series: dict[str, Sequence[float]],
                yaxis: str, height: int = 320) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (name, values) in enumerate(series.items()):
        fig.add_trace(go.Bar(x=[plot_text(x) for x in labels], y=list(values),
                             name=plot_text(name), marker_color=series_color(i)))
    fig.update_layout(title={"text": plot_text(title), "x": 0.0, "font": {"size": 15}},
                      yaxis_title=plot_text(yaxis), barmode="group", height=height,
                      template="plotly_white", margin={"l": 60, "r": 20, "t": 50, "b": 60},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def _trials_figure(job: Job) -> go.Figure:
    """Each trial's objective by number (colour by state) and the best so far (lower is better:
    the objective is the CV log loss)."""
    import plotly.graph_objects as go

    trials = sorted(job.trials, key=lambda t: t.number)
    fig = go.Figure()
    for i, state in enumerate(("COMPLETE", "PRUNED", "FAIL")):
        ts = [t for t in trials if t.state == state and t.value is not None
              and math.isfinite(t.value)]
        if ts:
            fig.add_trace(go.Scatter(
                x=[t.number for t in ts], y=[t.value for t in ts], mode="markers",
                name=state.lower(), marker={"color": series_color(i), "size": 8},
                text=[plot_text(", ".join(f"{k}={_fmt(v)}" for k, v in t.params.items()))
                      for t in ts],
                hovertemplate="trial %{x}: %{y:.5g}<br>%{text}<extra></extra>"))
    done = [t for t in trials if t.state == "COMPLETE" and t.value is not None
            and math.isfinite(t.value)]
    if done:
        best = np.minimum.accumulate([t.value for t in done])
        fig.add_trace(go.Scatter(x=[t.number for t in done], y=best, mode="lines",
                                 name="best so far", line={"color": "#333", "dash": "dot"}))
    fig.update_layout(title={"text": plot_text(f"{job.symbol} {job.model}: Optuna history"),
                             "x": 0.0, "font": {"size": 15}},
                      xaxis_title="trial", yaxis_title="objective (CV log loss)", height=320,
                      template="plotly_white", margin={"l": 60, "r": 20, "t": 50, "b": 40},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def param_importances(trials: Sequence[TrialCompleted]) -> dict[str, float]:
    """How much each numeric parameter moved the objective across completed trials: the
    absolute Spearman rank correlation, normalised to sum to 1 (a light stand-in for fANOVA,
    which needs scikit-learn; deterministic, and honest about being monotone-only)."""
    done = [t for t in trials if t.state == "COMPLETE" and t.value is not None
            and math.isfinite(t.value)]
    if len(done) < 3:
        return {}
    y = np.argsort(np.argsort([t.value for t in done])).astype(float)
    out: dict[str, float] = {}
    for name in sorted({k for t in done for k in t.params}):
        vals = [t.params.get(name) for t in done]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            continue
        x = np.argsort(np.argsort(np.asarray(vals, dtype=float), kind="stable")).astype(float)
        if np.std(x) == 0:
            continue
        out[name] = abs(float(np.corrcoef(x, y)[0, 1]))
    total = sum(out.values())
    return {k: v / total for k, v in sorted(out.items(), key=lambda kv: -kv[1])} if total else {}


def _stability_figure(job: Job) -> go.Figure | None:
    """Feature importances across the symbol's releases (normalised per release)."""
    import plotly.graph_objects as go

    if len(job.history) < 2:
        return None
    features = sorted({f for _, imp in job.history for f in imp})
    z = []
    for _, imp in job.history:
        total = sum(imp.values()) or 1.0
        z.append([imp.get(f, 0.0) / total for f in features])
    fig = go.Figure(go.Heatmap(z=np.asarray(z).T, x=[plot_text(r) for r, _ in job.history],
                               y=[plot_text(f) for f in features], colorscale="Blues",
                               colorbar={"title": "share"}))
    fig.update_layout(title={"text": plot_text(f"{job.symbol}: feature importance by release"),
                             "x": 0.0, "font": {"size": 15}}, height=120 + 18 * len(features),
                      template="plotly_white", margin={"l": 120, "r": 20, "t": 50, "b": 60})
    return fig


# --------------------------------------------------------------------------------- page

SUMMARY_COLUMNS = [
    Column("symbol", "symbol", str, numeric=False),
    Column("model", "model", str, numeric=False),
    Column("verdict", "verdict", str, numeric=False),
    Column("sharpe", "Sharpe (fold mean)"),
    Column("champion_sharpe", "champion Sharpe"),
    Column("dsr", "DSR"),
    Column("n_trades", "trades"),
    Column("n_trials", "trials"),
    Column("release", "release", str, numeric=False),
    Column("champion", "champion", str, numeric=False),
]

FOLD_KEYS = ("sharpe", "total_return", "max_drawdown", "hit_rate", "n_trades", "accuracy", "auc")


def _summary_row(j: Job) -> dict[str, Any]:
    v = j.verdict
    row: dict[str, Any] = {"symbol": j.symbol, "model": j.model}
    if v is None:
        failed = j.finished is not None and not j.finished.succeeded
        row["verdict"] = f"failed: {j.finished.error}" if failed and j.finished else "no verdict"
        return row
    row |= {"verdict": "released" if v.passed else "refused",
            "sharpe": v.metrics.get("sharpe", math.nan),
            "champion_sharpe": v.champion_metrics.get("sharpe", math.nan),
            "dsr": v.metrics.get("dsr", math.nan), "n_trades": v.metrics.get("n_trades", math.nan),
            "n_trials": v.n_trials, "release": v.challenger if v.passed else "–",
            "champion": v.champion or "none"}
    return row


def _fold_rows(j: Job) -> list[dict[str, Any]]:
    ev = j.evaluation
    if ev is None:
        return []
    rows = []
    for i, f in enumerate(ev.fold_metrics):
        c = ev.champion_fold_metrics[i] if i < len(ev.champion_fold_metrics) else {}
        row: dict[str, Any] = {"fold": i + 1}
        for k in FOLD_KEYS:
            row[k] = f.get(k, math.nan)
            row[f"champion_{k}"] = c.get(k, math.nan) if c else math.nan
        rows.append(row)
    return rows


def _fold_columns(with_champion: bool) -> list[Column]:
    cols = [Column("fold", "fold")]
    for k in FOLD_KEYS:
        fmt = percent if k in ("total_return", "max_drawdown", "hit_rate") else None
        cols.append(Column(k, k.replace("_", " "), fmt) if fmt else Column(k, k.replace("_", " ")))
        if with_champion:
            label = f"champion {k.replace('_', ' ')}"
            cols.append(Column(f"champion_{k}", label, fmt) if fmt else
                        Column(f"champion_{k}", label))
    return cols


def _gate_lines(j: Job) -> list[str]:
    v = j.verdict
    if v is None:
        return ["No verdict was recorded for this job."]
    lines = [f"{'Released' if v.passed else 'Refused'}: challenger {v.challenger} against "
             f"{'champion ' + v.champion if v.champion else 'no champion'}, "
             f"{v.n_trials} trials started, deflated Sharpe "
             f"{_fmt(v.deflated_sharpe)}."]
    nums = ", ".join(f"{k} {_fmt(v.metrics.get(k))}" for k in
                     ("sharpe", "psr", "dsr", "expected_max_sr", "n_trades", "max_drawdown")
                     if k in v.metrics)
    lines.append(f"Challenger: {nums}.")
    if v.champion_metrics:
        lines.append("Champion on the same folds: " + ", ".join(
            f"{k} {_fmt(v.champion_metrics.get(k))}" for k in ("sharpe", "n_trades", "max_drawdown")
            if k in v.champion_metrics) + ".")
    lines += [f"• {r}" for r in v.reasons]
    return lines


def _job_blocks(j: Job) -> list[Any]:
    blocks: list[Any] = [paragraphs(_gate_lines(j))]
    ev = j.evaluation
    if ev is not None:
        t, r, c = ev.paths()
        series = {"challenger": (t, r)}
        if c is not None:
            series[f"champion {ev.champion}"] = (t, c)
        note = f" (buckets of {ev.aggregated} bars)" if ev.aggregated > 1 else ""
        blocks.append(equity_figure(series, title=f"{j.symbol} {j.model}: out-of-sample equity "
                                    f"after costs, concatenated folds{note}"))
        blocks.append(drawdown_figure(series, title=f"{j.symbol} {j.model}: drawdown"))
        folds = _fold_rows(j)
        blocks.append(_bar_figure(
            f"{j.symbol} {j.model}: Sharpe per fold", [str(f["fold"]) for f in folds],
            {"challenger": [f["sharpe"] for f in folds]}
            | ({"champion": [f["champion_sharpe"] for f in folds]} if c is not None else {}),
            "Sharpe (annualised)"))
        blocks.append(table_html(folds, _fold_columns(bool(ev.champion_fold_metrics))))
    else:
        blocks.append(paragraphs(["The log holds no out-of-sample evidence for this job "
                                  "(recorded by runs since RetrainEvaluated existed)."]))
    imp = j.importances
    if imp:
        top = sorted(imp.items(), key=lambda kv: -kv[1])[:25]
        blocks.append(_bar_figure(f"{j.symbol} {j.model}: feature importance (selection)",
                                  [k for k, _ in top], {"importance": [v for _, v in top]},
                                  "importance"))
    stab = _stability_figure(j)
    if stab is not None:
        blocks.append(stab)
    if j.trials:
        blocks.append(_trials_figure(j))
        pimp = param_importances(j.trials)
        if pimp:
            blocks.append(_bar_figure(
                f"{j.symbol} {j.model}: parameter importance (|Spearman| with the objective)",
                list(pimp), {"share": list(pimp.values())}, "share of importance"))
    return blocks


def build_retrain_report(record: RunRecord) -> Report:
    """The page of a run (see the module doc)."""
    jobs = sorted(record.jobs, key=lambda j: (j.symbol, j.model))
    started = [j.started.ts_event for j in jobs if j.started is not None]
    released = sum(1 for j in jobs if j.verdict is not None and j.verdict.passed)
    refused = sum(1 for j in jobs if j.verdict is not None and not j.verdict.passed)
    subtitle = (f"run {record.run_id} · {len(jobs)} jobs: {released} released, {refused} refused"
                + (f" · started {iso(min(started))}" if started else ""))
    report = Report(f"Retrain {record.run_id}", subtitle,
                    footer=[f"autoopt retrain report · run {record.run_id}",
                            "All figures out of sample, after costs, on the concatenated folds."])
    report.section("Verdicts", table_html([_summary_row(j) for j in jobs], SUMMARY_COLUMNS))
    for j in jobs:
        data = ""
        if j.started is not None and j.started.data_end:
            data = f" · data {iso(j.started.data_start)} .. {iso(j.started.data_end)}"
        report.section(f"{j.symbol} · {j.model}{data}", *_job_blocks(j))
    return report


def write_retrain_report(record: RunRecord, path: str | Path) -> Path:
    return build_retrain_report(record).write(path)


__all__ = [
    "Job",
    "RunRecord",
    "build_retrain_report",
    "collect_run",
    "param_importances",
    "read_run",
    "write_retrain_report",
]
