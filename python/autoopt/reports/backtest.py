"""The policy backtest report: one offline HTML page that answers "did retraining pay, after
costs, and is the difference real?" for a `BacktestResult`.

Order of the page, most decisive first: the comparison's sentences; pooled equity curves with
retrain / release / refusal / failure markers (refusal reasons on hover), and with risk
re-tuning the strategy-params releases, refusals and failures; pooled drawdowns; one
equity chart per symbol behind a drop-down; model age over time; the metrics table (each policy
pooled, then per symbol); the significance table. Figures missing from the result (metrics not
filled) are computed on a copy; a result without a comparison says so instead of running one
(the bootstrap belongs to the run, and its seed to the run's digest).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from autoopt.backtest.metrics import POOLED, fill_metrics, pooled_path
from autoopt.backtest.result import BacktestResult, Marker, PolicyResult
from autoopt.reports.html import (
    Column,
    Html,
    Report,
    drawdown_figure,
    equity_figure,
    line_figure,
    paragraphs,
    percent,
    selector_figure,
    table_html,
)

_S_PER_DAY = 86_400.0

METRIC_COLUMNS = [
    Column("policy", "policy", str, numeric=False),
    Column("scope", "symbols", str, numeric=False),
    Column("total_return", "total return", percent),
    Column("annual_return", "annual return", percent),
    Column("sharpe", "Sharpe"),
    Column("sortino", "Sortino"),
    Column("max_drawdown", "max drawdown", percent),
    Column("calmar", "Calmar"),
    Column("hit_rate", "hit rate", percent),
    Column("turnover", "turnover / bar"),
    Column("trades", "trades", lambda v: f"{int(v):,}"),
    Column("n_bars", "bars", lambda v: f"{int(v):,}"),
    Column("retrains", "retrains"),
    Column("releases", "releases"),
    Column("refusals", "refusals"),
    Column("failures", "failures"),
    Column("age_days", "mean model age (days)"),
]

PARAMS_COLUMNS = [
    Column("params_releases", "params releases"),
    Column("params_refusals", "params refusals"),
    Column("params_failures", "params failures"),
    Column("risk_compute_s", "re-tune compute (s)"),
]
_REFUSALS = ("refusal", "failed", "params_refusal", "params_failed")

SIGNIFICANCE_COLUMNS = [
    Column("policy", "policy", str, numeric=False),
    Column("baseline", "against", str, numeric=False),
    Column("sharpe_diff", "Sharpe difference / year", lambda v: _signed(v)),
    Column("ci", "confidence interval", str),
    Column("jkm_z", "JKM z"),
    Column("jkm_p", "JKM p"),
    Column("p_adjusted", "Holm-adjusted p"),
    Column("verdict", "verdict", str, numeric=False),
]

MARKER_COLUMNS = [
    Column("policy", "policy", str, numeric=False),
    Column("symbol", "symbol", str, numeric=False),
    Column("time", "time (UTC)", str, numeric=False),
    Column("kind", "kind", str, numeric=False),
    Column("text", "reason", str, numeric=False),
]

MAX_MARKER_ROWS = 200


def _signed(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:+.3f}"


def _when(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _with_metrics(p: PolicyResult) -> PolicyResult:
    if POOLED in p.metrics:
        return p
    return fill_metrics(msgspec.structs.replace(p))


def _markers(p: PolicyResult) -> list[Marker]:
    """Every symbol's markers, in time order, their text naming the symbol when there are
    several (one retrain decision usually shows on every symbol: listed once)."""
    seen: dict[tuple[int, str, str], Marker] = {}
    several = len(p.paths) > 1
    for symbol, path in p.paths.items():
        for m in path.markers:
            key = (m.ts, m.kind, m.text)
            if key in seen:
                continue
            text = f"{symbol}: {m.text}" if several and m.kind in _REFUSALS else m.text
            seen[key] = msgspec.structs.replace(m, text=text)
    return sorted(seen.values(), key=lambda m: m.ts)


def _pooled_age(p: PolicyResult) -> tuple[np.ndarray, np.ndarray]:
    """(union ts, mean model age in days over the symbols with a model at that bar)."""
    ts = np.unique(np.concatenate([np.asarray(x.ts, dtype=np.int64) for x in p.paths.values()]))
    total = np.zeros(ts.size)
    count = np.zeros(ts.size)
    for path in p.paths.values():
        at = np.searchsorted(ts, np.asarray(path.ts, dtype=np.int64))
        age = np.asarray(path.model_age_s, dtype=np.float64)
        ok = np.isfinite(age)
        np.add.at(total, at[ok], age[ok])
        np.add.at(count, at[ok], 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ts, np.where(count > 0, total / count / _S_PER_DAY, np.nan)


def _metric_rows(policies: list[PolicyResult]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for p in policies:
        pooled = {
            "policy": p.policy,
            "scope": "pooled" if len(p.paths) > 1 else next(iter(p.paths), "pooled"),
            **p.metrics[POOLED],
            "retrains": p.retrains,
            "releases": p.releases,
            "refusals": p.refusals,
            "failures": p.failures,
            "age_days": p.mean_model_age_s / _S_PER_DAY,
            "params_releases": p.params_releases,
            "params_refusals": p.params_refusals,
            "params_failures": p.params_failures,
            "risk_compute_s": p.risk_compute_s,
        }
        rows.append(pooled)
        if len(p.paths) > 1:
            rows += [{"policy": "", "scope": s, **p.metrics[s]} for s in p.paths]
    return rows


def _significance(result: BacktestResult) -> list[Html]:
    c = result.comparison
    if c is None:
        return [paragraphs(["No significance tests in this result (no comparison was run)."])]
    level = f"{c.level * 100:g}%"
    rows = [
        {
            "policy": t.policy,
            "baseline": t.baseline,
            "sharpe_diff": t.sharpe_diff,
            "ci": f"{level}: {_signed(t.ci_low)} to {_signed(t.ci_high)}",
            "jkm_z": t.jkm_z,
            "jkm_p": t.jkm_p,
            "p_adjusted": t.p_adjusted,
            "verdict": t.verdict,
        }
        for t in c.tests
    ]
    note = (
        f"Paired on the bars both pooled paths have; block-bootstrap {level} intervals; "
        f"Jobson-Korkie-Memmel p-values, Holm-adjusted over the {len(c.tests)} tests; a verdict "
        "needs both the adjusted p below "
        f"{1 - c.level:.2g} and an interval that excludes 0. "
        f"{c.k_policies} policies compared."
    )
    return [table_html(rows, SIGNIFICANCE_COLUMNS), paragraphs([note], "note")]


def _symbol_figures(policies: list[PolicyResult], symbols: list[str]) -> Any:
    figs = {}
    for symbol in symbols:
        series = {}
        markers = {}
        for p in policies:
            path = p.paths.get(symbol)
            if path is None:
                continue
            series[p.policy] = (path.ts, path.returns)
            markers[p.policy] = path.markers
        if series:
            figs[symbol] = equity_figure(series, markers, title=f"Equity: {symbol}", height=380)
    return selector_figure(figs, label="symbol") if figs else None


def _marker_rows(policies: list[PolicyResult]) -> list[dict[str, Any]]:
    rows = [
        {"policy": p.policy, "symbol": s, "time": _when(m.ts), "kind": m.kind, "text": m.text}
        for p in policies
        for s, path in p.paths.items()
        for m in path.markers
        if m.kind in _REFUSALS
    ]
    return rows


def backtest_report(result: BacktestResult) -> str:
    """The report of ``result`` as one self-contained HTML document (see the module doc)."""
    return build_backtest_report(result).render()


def build_backtest_report(result: BacktestResult) -> Report:
    """The report of ``result`` as a `Report`, to render or write."""
    policies = [_with_metrics(p) for p in result.policies]
    pooled = {p.policy: pooled_path(p.paths)[:2] for p in policies}
    symbols = list(dict.fromkeys([*result.symbols, *(s for p in policies for s in p.paths)]))
    period = f"{_when(result.start_ns)} to {_when(result.end_ns)} UTC"
    report = Report(
        title="Policy backtest: " + ", ".join(p.policy for p in policies),
        subtitle=f"{', '.join(symbols)} · {period} · source {result.source}",
        footer=[
            f"run digest {result.run_digest}",
            f"seed {result.seed} · {result.trials} trials per retrain · warm-up "
            f"{result.warmup:g} · train delay {result.train_delay} · model cache "
            f"{result.cache_hits} hits, {result.cache_misses} misses · {result.wall_s:.1f} s",
        ],
    )
    summary = result.comparison.summary if result.comparison else []
    report.section(
        "Verdict",
        paragraphs(summary or ["No comparison was run: see the figures below."], "summary"),
    )
    report.section(
        "Equity after costs (pooled, equal weight)",
        equity_figure(pooled, {p.policy: _markers(p) for p in policies}, title="Pooled equity"),
        drawdown_figure(pooled, title="Pooled drawdown"),
    )
    per_symbol = _symbol_figures(policies, symbols)
    if per_symbol is not None and len(symbols) > 1:
        report.section("Equity per symbol", per_symbol)
    report.section(
        "Model age",
        line_figure(
            {p.policy: _pooled_age(p) for p in policies},
            title="Age of the model trading (mean over symbols)",
            yaxis="days since release",
        ),
    )
    retuning = any(p.params_releases or p.params_refusals or p.params_failures for p in policies)
    report.section("Metrics after costs", table_html(
        _metric_rows(policies), METRIC_COLUMNS + (PARAMS_COLUMNS if retuning else [])))
    report.section("Is the difference real?", *_significance(result))
    refusals = _marker_rows(policies)
    if refusals:
        shown = refusals[:MAX_MARKER_ROWS]
        more = len(refusals) - len(shown)
        blocks: list[Html] = [table_html(shown, MARKER_COLUMNS)]
        if more:
            blocks.append(paragraphs([f"… and {more} more."], "note"))
        report.section("Refusals and failures", *blocks)
    return report


def write_backtest_report(result: BacktestResult, path: str | Path) -> Path:
    """Write `backtest_report` of ``result`` to ``path`` (see `Report.write`); returns it."""
    return build_backtest_report(result).write(path)


__all__ = ["backtest_report", "build_backtest_report", "write_backtest_report"]
