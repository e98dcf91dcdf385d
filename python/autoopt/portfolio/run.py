"""One portfolio run: align the symbols' closes, walk the method and 1/N forward on the same
bars with the same costs, judge, and fit the weights to trade now (on the last ``lookback``
bars). Shared by ``autoopt portfolio`` and tests."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from autoopt.errors import DataError
from autoopt.portfolio.walkforward import PortfolioPath, walk_forward
from autoopt.portfolio.weights import check_method, fit_weights
from autoopt.validation.gate import GateConfig, GateVerdict
from autoopt.validation.metrics import max_drawdown, sharpe_ratio


def returns_matrix(frames: dict[str, pl.DataFrame]) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(ts, symbols, returns): closes inner-joined on ts (bars every symbol has), simple
    returns per bar (row 0 is 0)."""
    if len(frames) < 2:
        raise DataError(f"portfolio: need at least 2 symbols, got {sorted(frames)}")
    names = sorted(frames)
    joined: pl.DataFrame | None = None
    for s in names:
        f = frames[s].select(pl.col("ts").cast(pl.Int64), pl.col("close").cast(pl.Float64).alias(s))
        joined = f if joined is None else joined.join(f, on="ts", how="inner")
    assert joined is not None
    joined = joined.sort("ts").unique("ts", keep="first", maintain_order=True)
    if joined.height < 30:
        raise DataError(f"portfolio: the symbols share only {joined.height} bars")
    close = joined.select(names).to_numpy()
    if not np.all(np.isfinite(close)) or np.any(close <= 0):
        raise DataError("portfolio: closes must be finite and positive")
    r = np.zeros_like(close)
    r[1:] = close[1:] / close[:-1] - 1.0
    return joined["ts"].to_numpy(), names, r


@dataclass
class PortfolioOutcome:
    method: str
    symbols: list[str]
    path: PortfolioPath
    equal: PortfolioPath
    verdict: GateVerdict
    weights: dict[str, float]
    periods_per_year: float
    data_range: tuple[int, int]
    release_id: str = ""


def run_portfolio(frames: dict[str, pl.DataFrame], method: str, *, lookback: int = 252,
                  rebalance: str = "1M", cost_bps: float = 0.0, max_weight: float = 1.0,
                  gate: GateConfig | None = None) -> PortfolioOutcome:
    from autoopt.pipeline.dataset import periods_per_year
    from autoopt.portfolio.gate import judge

    check_method(method)
    ts, names, r = returns_matrix(frames)
    ppy = periods_per_year(ts)
    path, equal = (walk_forward(r, ts, m, lookback=lookback, rebalance=rebalance,
                                cost_bps=cost_bps, max_weight=max_weight)
                   for m in (method, "equal"))
    verdict = judge(path, equal, periods_per_year=ppy, config=gate)
    now = fit_weights(r[-lookback:], method, max_weight=max_weight)
    return PortfolioOutcome(method, names, path, equal, verdict,
                            {s: float(w) for s, w in zip(names, now, strict=True)}, ppy,
                            (int(ts[0]), int(ts[-1])))


def _f(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def summary(o: PortfolioOutcome) -> dict[str, Any]:
    ppy = o.periods_per_year
    figs = {name: {"sharpe": _f(sharpe_ratio(p.returns, ppy)),
                   "max_drawdown": _f(max_drawdown(p.returns)),
                   "total_return": _f(float(np.prod(1 + p.returns) - 1)),
                   "turnover": _f(float(p.turnover.mean()))}
            for name, p in ((o.method, o.path), ("equal", o.equal))}
    return {"method": o.method, "symbols": o.symbols, "passed": o.verdict.passed,
            "weights": o.weights, "release_id": o.release_id or None, "oos": figs,
            "rebalances": len(o.path.rebalances),
            "gate": {"reasons": [{"rule": r.rule, "code": r.code, "passed": r.passed,
                                  "message": r.message} for r in o.verdict.reasons],
                     "stats": {k: _f(v) for k, v in o.verdict.stats.items()}}}


def report(o: PortfolioOutcome, path: str) -> None:
    import plotly.graph_objects as go

    from autoopt.reports.html import Column, Report, equity_figure, paragraphs, table_html

    rep = Report("portfolio", f"{o.method} vs 1/N: walk-forward after costs, weights drifting")
    eq = equity_figure({o.method: (o.path.ts, o.path.returns), "1/N": (o.equal.ts, o.equal.returns)},
                       title="out-of-sample equity")
    fig = go.Figure()
    for j, s in enumerate(o.symbols):
        fig.add_scatter(x=[int(i) for i in range(len(o.path.rebalances))],
                        y=o.path.weights[:, j], mode="lines", name=s, stackgroup="w")
    fig.update_layout(height=360, title="target weights at each rebalance", xaxis_title="rebalance")
    rows = [{"rule": r.rule, "code": r.code, "passed": "yes" if r.passed else "NO",
             "message": r.message} for r in o.verdict.reasons]
    rep.section("verdict", paragraphs([f"{'RELEASE' if o.verdict.passed else 'REFUSED'}: "
                                       f"{o.method} vs 1/N"]),
                table_html(rows, [Column(k, k, numeric=False) for k in ("rule", "code", "passed",
                                                                           "message")]))
    rep.section("equity", eq, fig)
    rep.section("weights now", table_html([{"symbol": s, "weight": w} for s, w in o.weights.items()],
                                          [Column("symbol", "symbol", numeric=False),
                                           Column("weight", "weight")]))
    rep.write(path)


__all__ = ["PortfolioOutcome", "report", "returns_matrix", "run_portfolio", "summary"]
