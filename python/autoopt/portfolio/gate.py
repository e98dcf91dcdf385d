"""The portfolio gate: a method's weights are released only if its walk-forward path beats 1/N
out of sample under the model gate's rules (`autoopt.validation.gate.evaluate_gate`).

Why 1/N: equal weights need no estimation and are famously hard to beat after costs (DeMiguel,
Garlappi & Uppal 2009); an optimiser that cannot beat them out of sample only adds estimation
error. The rules: the champion rule with 1/N as the champion — mean Sharpe over ``n_folds``
consecutive blocks of the two paths (same bars, same costs, same rebalancing) must improve by
the margin —, the Deflated Sharpe of the method's path with N = the methods tried, and at least
``min(min_trades, 12)`` rebalances (a rebalance is the portfolio's trade).
"""

from __future__ import annotations

import numpy as np

from autoopt.errors import DataError
from autoopt.portfolio.walkforward import PortfolioPath
from autoopt.validation.gate import GateConfig, GateVerdict, evaluate_gate
from autoopt.validation.metrics import sharpe_ratio


def fold_metrics(path: PortfolioPath, n_folds: int, periods_per_year: float) -> list[dict[str, float]]:
    blocks = np.array_split(np.arange(path.returns.size), n_folds)
    rebalance_rows = np.asarray(path.rebalances) - path.rebalances[0]
    out = []
    for b in blocks:
        trades = int(np.count_nonzero((rebalance_rows >= b[0]) & (rebalance_rows <= b[-1])))
        out.append({"sharpe": sharpe_ratio(path.returns[b], periods_per_year),
                    "n_trades": float(trades)})
    return out


def judge(path: PortfolioPath, equal: PortfolioPath, *, periods_per_year: float, n_trials: int = 1,
          config: GateConfig | None = None, n_folds: int = 5) -> GateVerdict:
    if path.returns.size != equal.returns.size:
        raise DataError("portfolio gate: the method and 1/N paths cover different bars")
    if path.returns.size < 2 * n_folds:
        raise DataError(f"portfolio gate: {path.returns.size} out-of-sample bars are too few")
    cfg = config or GateConfig()
    cfg = GateConfig(margin=cfg.margin, dsr_threshold=cfg.dsr_threshold,
                     min_trades=min(cfg.min_trades, 12), metric="sharpe")
    v = evaluate_gate(fold_metrics(path, n_folds, periods_per_year),
                      fold_metrics(equal, n_folds, periods_per_year), path.returns,
                      max(n_trials, 1), config=cfg, champion_returns=equal.returns,
                      periods_per_year=periods_per_year)
    reasons = [r if r.rule != "champion" else type(r)(
        "vs_equal_weight", {"beats_champion": "beats_equal_weight",
                            "below_champion_margin": "below_equal_weight"}.get(r.code, r.code),
        r.passed, f"vs 1/N: {r.message}") for r in v.reasons]
    return GateVerdict(v.passed, reasons, v.stats)


__all__ = ["fold_metrics", "judge"]
