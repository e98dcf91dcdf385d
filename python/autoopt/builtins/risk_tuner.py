"""Built-in risk tuner: stop loss, take profit, volatility-targeted sizing and a drawdown limit,
searched with Optuna (seeded TPE) on the first part of the history and checked on the rest.

The search maximises the in-sample Sharpe ratio after costs of `autoopt.risk.simulate`; the
chosen parameters are kept only if they do not make the out-of-sample Sharpe worse than the
model's positions without any overlay (otherwise the neutral overlay is returned), so a tuner
run can never silently make live risk worse on data it did not see.
"""

from __future__ import annotations

import math

import numpy as np
import optuna

from autoopt.plugins.interfaces import RiskTask
from autoopt.risk import RiskParams, simulate
from autoopt.validation.metrics import max_drawdown, sharpe_ratio

NEUTRAL = RiskParams()


def _periods_per_year(ts: np.ndarray) -> float:
    step = float(np.median(np.diff(ts))) / 1e9 if ts.size > 1 else 86_400.0
    return 365.25 * 86_400.0 / max(step, 1.0)


class StopsSizingTuner:
    """Tunes stop_loss_atr, take_profit_atr, vol_target, max_drawdown for one symbol."""

    name = "stops-sizing"

    def __init__(self, n_trials: int = 40, in_sample: float = 0.7) -> None:
        self.n_trials = n_trials
        self.in_sample = in_sample

    def evaluate(self, task: RiskTask, params: RiskParams) -> dict[str, float]:
        """Sharpe and max drawdown of ``params`` in and out of sample."""
        ts = task.bars["ts"].to_numpy()
        ppy = _periods_per_year(ts)
        cost = task.costs.fee_bps + task.costs.slippage_bps
        r = simulate(task.bars, task.positions, params, periods_per_year=ppy, cost_bps=cost)
        cut = int(len(r) * self.in_sample)
        return {
            "is_sharpe": sharpe_ratio(r[:cut], ppy),
            "oos_sharpe": sharpe_ratio(r[cut:], ppy),
            "oos_max_drawdown": max_drawdown(r[cut:]),
        }

    def tune(self, task: RiskTask) -> dict[str, float]:
        ts = task.bars["ts"].to_numpy()
        ppy = _periods_per_year(ts)
        cost = task.costs.fee_bps + task.costs.slippage_bps
        cut = int(task.bars.height * self.in_sample)
        train_bars, train_pos = task.bars.head(cut), np.asarray(task.positions)[:cut]

        def objective(trial: optuna.Trial) -> float:
            params = RiskParams(
                stop_loss_atr=trial.suggest_float("stop_loss_atr", 0.5, 6.0),
                take_profit_atr=trial.suggest_float("take_profit_atr", 0.5, 10.0),
                vol_target=trial.suggest_float("vol_target", 0.05, 0.5),
                max_leverage=trial.suggest_float("max_leverage", 0.5, 3.0),
                max_drawdown=trial.suggest_float("max_drawdown", 0.05, 0.5),
                halt_bars=trial.suggest_int("halt_bars", 1, 50),
            )
            r = simulate(train_bars, train_pos, params, periods_per_year=ppy, cost_bps=cost)
            value = sharpe_ratio(r, ppy)
            return value if math.isfinite(value) else -1e9

        sampler = optuna.samplers.TPESampler(seed=task.seed)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective, n_trials=self.n_trials)
        best = RiskParams(**study.best_params)
        if self.evaluate(task, best)["oos_sharpe"] < self.evaluate(task, NEUTRAL)["oos_sharpe"]:
            return NEUTRAL.as_dict()
        return best.as_dict()
