"""The experiment report (`autoopt report ab EXPERIMENT`): one offline page with each variant's
cumulative outcome, the always-valid confidence sequence of each challenger against the
champion (mSPRT), the guardrails with the figures they watch, every test, and the decision.

From the log: the experiment's state (`ExperimentBook`) and its trades joined to variants
(`OutcomeTracker`), the same projections `autoopt ab status` and the supervisor decide on, so
the page shows the decision the rules take now, with the numbers behind it.

The confidence sequence is drawn at 100 looks over each arm's trades in order (look k uses the
first k% of each arm), with the running intersection the monitor keeps: where its band leaves 0,
the difference is significant at the experiment's alpha whenever it was looked at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autoopt.reports.html import (
    Column,
    Report,
    paragraphs,
    plot_text,
    series_color,
    table_html,
)
from autoopt.reports.lineage import iso

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from autoopt.ab.decision import Decision
    from autoopt.ab.experiments import Experiment
    from autoopt.log import EventLog

LOOKS = 100


@dataclass
class ExperimentRecord:
    experiment: Experiment
    returns: dict[str, np.ndarray]
    """Per-trade returns of each variant, in the order they were recorded."""
    decision: Decision
    at_ns: int


async def read_experiment(event_log: EventLog, name: str) -> ExperimentRecord:
    """The experiment's state, trades and current decision; ConfigError for an unknown name."""
    from autoopt.ab.decision import decide
    from autoopt.ab.experiments import ExperimentBook
    from autoopt.ab.tracking import OutcomeTracker
    from autoopt.clock import SystemClock

    book = await ExperimentBook.rebuild(event_log)
    exp = book.get(name)
    tracker = await OutcomeTracker.rebuild(event_log)
    now = SystemClock().now_ns()
    stats = tracker.of(name)
    returns = {v.name: (np.array(stats[v.name].returns) if v.name in stats else np.empty(0))
               for v in exp.variants}
    return ExperimentRecord(exp, returns, decide(exp, tracker, now), now)


def confidence_sequence(
    a: np.ndarray, b: np.ndarray, *, alpha: float, tuning: float, looks: int = LOOKS
) -> dict[str, np.ndarray]:
    """mSPRT of mean(b) - mean(a) at ``looks`` looks: ``n`` (total trades), ``diff``, ``low``,
    ``high`` (running intersection) and ``p`` (running minimum). Looks with fewer than 2 trades
    in an arm are skipped."""
    from autoopt.ab.sequential import msprt_arrays

    frac = np.arange(1, looks + 1) / looks
    na = np.ceil(frac * a.size).astype(int)
    nb = np.ceil(frac * b.size).astype(int)
    keep = (na >= 2) & (nb >= 2)
    na, nb = na[keep], nb[keep]
    if na.size == 0:
        return {k: np.empty(0) for k in ("n", "diff", "low", "high", "p")}
    ca, cb = np.cumsum(a), np.cumsum(b)
    qa, qb = np.cumsum(a * a), np.cumsum(b * b)
    ma, mb = ca[na - 1] / na, cb[nb - 1] / nb
    va = (qa[na - 1] - na * ma * ma) / (na - 1)
    vb = (qb[nb - 1] - nb * mb * mb) / (nb - 1)
    diff = mb - ma
    n = na + nb
    se = np.sqrt(np.maximum(va, 0) / na + np.maximum(vb, 0) / nb)
    p, half = msprt_arrays(diff, se, n, alpha=alpha, tuning=tuning)
    low = np.maximum.accumulate(np.where(np.isfinite(half), diff - half, -np.inf))
    high = np.minimum.accumulate(np.where(np.isfinite(half), diff + half, np.inf))
    return {"n": n.astype(float), "diff": diff, "low": low, "high": high,
            "p": np.minimum.accumulate(p)}


def _layout(fig: go.Figure, title: str, xaxis: str, yaxis: str, height: int = 360) -> go.Figure:
    fig.update_layout(title={"text": plot_text(title), "x": 0.0, "font": {"size": 15}},
                      xaxis_title=plot_text(xaxis), yaxis_title=plot_text(yaxis), height=height,
                      template="plotly_white", margin={"l": 60, "r": 20, "t": 50, "b": 40},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def _cumulative_figure(rec: ExperimentRecord) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (name, r) in enumerate(rec.returns.items()):
        label = name + (" (champion)" if name == rec.experiment.champion else "")
        fig.add_trace(go.Scatter(x=np.arange(1, r.size + 1), y=np.cumsum(r), mode="lines",
                                 name=plot_text(label), line={"color": series_color(i)}))
    return _layout(fig, "Cumulative outcome per variant", "trade", "cumulative return")


def _sequence_figure(rec: ExperimentRecord, challenger: str, index: int) -> go.Figure:
    import plotly.graph_objects as go

    exp = rec.experiment
    cs = confidence_sequence(rec.returns[exp.champion], rec.returns[challenger],
                             alpha=exp.alpha, tuning=exp.tuning)
    fig = go.Figure()
    color = series_color(index)
    if cs["n"].size:
        low = np.where(np.isfinite(cs["low"]), cs["low"], np.nan)
        high = np.where(np.isfinite(cs["high"]), cs["high"], np.nan)
        fig.add_trace(go.Scatter(x=cs["n"], y=high, mode="lines", line={"width": 0},
                                 showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=cs["n"], y=low, mode="lines", line={"width": 0},
                                 fill="tonexty", fillcolor="rgba(99,110,250,0.2)",
                                 name=f"{1 - exp.alpha:.0%} confidence sequence"))
        fig.add_trace(go.Scatter(x=cs["n"], y=cs["diff"], mode="lines", name="difference",
                                 line={"color": color},
                                 text=[f"p {p:.3g}" for p in cs["p"]],
                                 hovertemplate="%{x} trades: %{y:.4g} (%{text})<extra></extra>"))
    fig.add_hline(y=0.0, line={"color": "#888", "dash": "dot"})
    return _layout(fig, f"{challenger} − {exp.champion}: mean return per trade (mSPRT)",
                   "trades (both arms)", "difference")


VARIANT_COLUMNS = [
    Column("variant", "variant", str, numeric=False),
    Column("routed", "routed"),
    Column("n", "trades"),
    Column("mean", "mean"),
    Column("sharpe", "Sharpe"),
    Column("pnl", "pnl"),
    Column("max_drawdown", "max drawdown"),
    Column("max_loss_streak", "loss streak"),
    Column("error_rate", "error rate"),
    Column("guardrail", "guardrail", str, numeric=False),
]

TEST_COLUMNS = [
    Column("challenger", "challenger", str, numeric=False),
    Column("test", "test", str, numeric=False),
    Column("estimate", "estimate"),
    Column("interval", "interval", str, numeric=False),
    Column("p", "p"),
]


def _guardrail_cell(exp: Experiment, s: dict[str, Any]) -> str:
    g = exp.guardrails
    trips = []
    if g.max_drawdown is not None:
        trips.append(f"dd {s.get('max_drawdown', 0):.3g}/{g.max_drawdown:.3g}"
                     + (" TRIPPED" if s.get("max_drawdown", 0) > g.max_drawdown else ""))
    if g.max_loss_streak is not None:
        trips.append(f"streak {s.get('max_loss_streak', 0)}/{g.max_loss_streak}"
                     + (" TRIPPED" if s.get("max_loss_streak", 0) >= g.max_loss_streak else ""))
    if g.max_error_rate is not None:
        tripped = s.get("routed", 0) >= g.min_routed and s.get("error_rate", 0) > g.max_error_rate
        trips.append(f"errors {s.get('error_rate', 0):.3g}/{g.max_error_rate:.3g}"
                     + (" TRIPPED" if tripped else ""))
    return "; ".join(trips) or "none set"


def _test_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    names = {"welch": "Welch t", "mann_whitney": "Mann-Whitney U",
             "sharpe_ci": "Sharpe diff (bootstrap)", "sequential": "mSPRT (always valid)",
             "jobson_korkie": "Jobson-Korkie-Memmel"}
    for v, c in stats.get("comparisons", {}).items():
        for key, label in names.items():
            t = c.get(key)
            if not t:
                continue
            est = t.get("diff", t.get("prob_superiority", math.nan))
            lo, hi = t.get("ci_low"), t.get("ci_high")
            rows.append({"challenger": v, "test": label, "estimate": est,
                         "interval": f"[{lo:.4g}, {hi:.4g}]" if lo is not None and hi is not None
                         else "–", "p": t.get("p_value", math.nan)})
    return rows


def build_ab_report(rec: ExperimentRecord) -> Report:
    exp, d = rec.experiment, rec.decision
    st = d.statistics
    subtitle = (f"{exp.symbol} · {exp.status} · champion {exp.champion}"
                + (" · shadow" if exp.shadow else "") + f" · as of {iso(rec.at_ns)}")
    report = Report(f"Experiment {exp.name}", subtitle,
                    footer=[f"autoopt experiment report · {exp.name}",
                            "Per-trade returns joined to variants from the log; the decision is "
                            "the one the rules take now."])
    lines = [f"Decision now: {d.action}" + (f" {d.variant}" if d.variant else "")
             + f" — {d.reason}"]
    if exp.winner or exp.status == "concluded":
        lines.append(f"Concluded: winner {exp.winner or 'none'} — {exp.reason}")
    if exp.hypothesis:
        lines.append(f"Hypothesis: {exp.hypothesis}")
    lines.append(f"Unit {exp.unit}, coverage {exp.coverage:.0%}, alpha {exp.alpha}, "
                 f"min samples {exp.min_samples}; variants: "
                 + ", ".join(f"{v.name}={v.release_id} ({v.weight:g})" for v in exp.variants))
    report.section("Decision", paragraphs(lines))
    rows = []
    for v in exp.variants:
        s = dict(st.get("variants", {}).get(v.name, {}))
        s["variant"] = v.name + (" *" if v.name == exp.champion else "")
        s["guardrail"] = _guardrail_cell(exp, s)
        rows.append(s)
    report.section("Variants and guardrails", table_html(rows, VARIANT_COLUMNS),
                   _cumulative_figure(rec))
    challengers = [v.name for v in exp.variants if v.name != exp.champion]
    report.section("Challengers against the champion",
                   *[_sequence_figure(rec, c, i + 1) for i, c in enumerate(challengers)],
                   table_html(_test_rows(st), TEST_COLUMNS))
    return report


def write_ab_report(rec: ExperimentRecord, path: str | Path) -> Path:
    return build_ab_report(rec).write(path)


__all__ = [
    "ExperimentRecord",
    "build_ab_report",
    "confidence_sequence",
    "read_experiment",
    "write_ab_report",
]
