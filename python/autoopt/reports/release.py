"""The release report (`autoopt report release SYMBOL [RELEASE]`): one offline page with a
model's life, from the log: why it was made (the `autoopt why` story: trigger, evidence, gate,
lineage, experiments), the out-of-sample evidence its gate judged, its live performance
against what the gate expected, drift and refusals since, and every release and refusal of the
symbol over time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autoopt.errors import ConfigError
from autoopt.events import (
    DriftReported,
    MetricsReported,
    ModelReleased,
    RetrainEvaluated,
    ValidationVerdict,
)
from autoopt.reports.html import (
    Column,
    Html,
    Report,
    drawdown_figure,
    equity_figure,
    esc,
    line_figure,
    table_html,
)
from autoopt.reports.lineage import Explanation, explain, iso, read_story, render_lines

if TYPE_CHECKING:
    from autoopt.log import EventLog
    from autoopt.log.eventlog import Record


@dataclass
class ReleaseRecord:
    symbol: str
    release_id: str
    explanation: Explanation
    evaluation: RetrainEvaluated | None = None
    live: list[tuple[int, MetricsReported]] = field(default_factory=list)
    drift: list[tuple[int, DriftReported]] = field(default_factory=list)
    verdicts: list[tuple[int, ValidationVerdict]] = field(default_factory=list)
    releases: list[tuple[int, ModelReleased]] = field(default_factory=list)


def collect_release(records: list[Record], symbol: str, release: str | None,
                    at_ns: int) -> ReleaseRecord:
    """Pure: the record of ``release`` (default: the champion at ``at_ns``) from the symbol's
    story events plus its `MetricsReported` and `RetrainEvaluated`."""
    x = explain(records, symbol, at_ns, release=release)
    if x.champion is None:
        what = f"release {release!r}" if release else "champion"
        raise ConfigError(f"{symbol}: the log holds no {what} (see autoopt releases list)")
    out = ReleaseRecord(symbol, x.champion, x)
    for r in records:
        e = r.event
        if isinstance(e, RetrainEvaluated) and e.challenger == x.champion:
            out.evaluation = e
        elif isinstance(e, MetricsReported) and e.release_id == x.champion:
            out.live.append((r.time_ns, e))
        elif isinstance(e, DriftReported):
            out.drift.append((r.time_ns, e))
        elif isinstance(e, ValidationVerdict):
            out.verdicts.append((r.time_ns, e))
        elif isinstance(e, ModelReleased):
            out.releases.append((r.time_ns, e))
    return out


async def read_release(event_log: EventLog, symbol: str, release: str | None = None,
                       *, at_ns: int | None = None) -> ReleaseRecord:
    from autoopt.logquery import replay_targets

    at = at_ns if at_ns is not None else time.time_ns()
    records = await read_story(event_log, symbol, at_ns=at)
    for target in replay_targets((MetricsReported, RetrainEvaluated), symbol):
        async for rec in event_log.replay_records(target):
            if getattr(rec.event, "symbol", None) == symbol:
                records.append(rec)
    records.sort(key=lambda r: (r.time_ns, r.seq))
    return collect_release(records, symbol, release, at)


RELEASE_COLUMNS = [
    Column("when", "released", str, numeric=False),
    Column("release", "release", str, numeric=False),
    Column("trainer", "trainer", str, numeric=False),
    Column("parent", "parent", str, numeric=False),
    Column("sharpe", "Sharpe"),
    Column("dsr", "DSR"),
    Column("n_trades", "trades"),
]

VERDICT_COLUMNS = [
    Column("when", "verdict", str, numeric=False),
    Column("challenger", "challenger", str, numeric=False),
    Column("passed", "passed"),
    Column("sharpe", "Sharpe"),
    Column("dsr", "DSR"),
    Column("reason", "first reason", str, numeric=False),
]


def _live_figure(rec: ReleaseRecord) -> Any:
    """Each live metric of the release over time, with the value its gate expected (dotted)."""
    import plotly.graph_objects as go

    from autoopt.reports.html import plot_text, series_color

    expected = rec.explanation.gate.metrics if rec.explanation.gate else {}
    fig = go.Figure()
    keys = sorted({k for _, m in rec.live for k in m.metrics})
    for i, k in enumerate(keys[:6]):
        pts = [(t, m.metrics[k]) for t, m in rec.live if k in m.metrics]
        x = np.asarray([t for t, _ in pts], dtype=np.int64).astype("datetime64[ns]")
        fig.add_trace(go.Scatter(x=x, y=[v for _, v in pts], mode="lines+markers",
                                 name=plot_text(f"live {k}"), line={"color": series_color(i)}))
        exp = expected.get(k)
        if exp is not None and math.isfinite(exp) and len(x):
            fig.add_trace(go.Scatter(x=[x[0], x[-1]], y=[exp, exp], mode="lines",
                                     name=plot_text(f"expected {k} (gate)"),
                                     line={"color": series_color(i), "dash": "dot"}))
    fig.update_layout(title={"text": "Live vs expected", "x": 0.0, "font": {"size": 15}},
                      height=340, template="plotly_white",
                      margin={"l": 60, "r": 20, "t": 50, "b": 40},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def _story(lines: list[str]) -> Html:
    """`autoopt why`'s lines: its section names (unindented) bold, the rest as they are."""
    out = []
    for line in lines:
        if line.startswith("  "):
            out.append(f'<p class="why">{esc(line.strip())}</p>')
        else:
            out.append(f"<p><b>{esc(line)}</b></p>")
    return Html("".join(out))


def build_release_report(rec: ReleaseRecord) -> Report:
    x = rec.explanation
    report = Report(f"{rec.symbol} · release {rec.release_id}",
                    f"{x.how or 'released'} {x.since} · report as of {x.at}",
                    footer=[f"autoopt release report · {rec.symbol} {rec.release_id}",
                            "From the event log: the story autoopt why tells, with its figures."])
    report.section("Why this release", _story(render_lines(x)))
    ev = rec.evaluation
    if ev is not None:
        t, r, c = ev.paths()
        series = {"this release (challenger then)": (t, r)}
        if c is not None:
            series[f"champion then ({ev.champion})"] = (t, c)
        report.section("The evidence its gate judged (out of sample, after costs)",
                       equity_figure(series, title="Equity on the concatenated folds"),
                       drawdown_figure(series))
    if rec.live:
        report.section("Live performance", _live_figure(rec))
    if rec.drift:
        by_stat: dict[str, tuple[list[int], list[float]]] = {}
        for t, d in rec.drift:
            name = f"{d.statistic} {d.stream}" + (f"/{d.feature}" if d.feature else "")
            ts, vs = by_stat.setdefault(name, ([], []))
            ts.append(t)
            vs.append(d.value)
        top = dict(list(by_stat.items())[:8])
        report.section("Drift readings",
                       line_figure({k: (np.asarray(a), np.asarray(b)) for k, (a, b) in top.items()},
                                   "Drift statistics of the symbol", "statistic"))
    releases = [{"when": iso(t), "release": e.release_id, "trainer": e.trainer or e.model_type,
                 "parent": e.parent or "–", "sharpe": e.metrics.get("sharpe", math.nan),
                 "dsr": e.metrics.get("dsr", math.nan),
                 "n_trades": e.metrics.get("n_trades", math.nan)} for t, e in rec.releases]
    verdicts = [{"when": iso(t), "challenger": v.challenger, "passed": v.passed,
                 "sharpe": v.metrics.get("sharpe", math.nan),
                 "dsr": v.metrics.get("dsr", math.nan),
                 "reason": next((r for r in v.reasons if not r.startswith(("no_champion",))),
                                v.reasons[0] if v.reasons else "")} for t, v in rec.verdicts]
    report.section(f"{rec.symbol}: releases", table_html(releases[::-1], RELEASE_COLUMNS))
    report.section(f"{rec.symbol}: verdicts (releases and refusals)",
                   table_html(verdicts[::-1], VERDICT_COLUMNS))
    return report


def write_release_report(rec: ReleaseRecord, path: str | Path) -> Path:
    return build_release_report(rec).write(path)


__all__ = [
    "ReleaseRecord",
    "build_release_report",
    "collect_release",
    "read_release",
    "write_release_report",
]
