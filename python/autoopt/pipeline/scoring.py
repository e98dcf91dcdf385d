"""Out-of-sample scoring of a model recipe on purged walk-forward folds, after costs.

The same function scores the challenger and the champion, on the same folds, so the gate
compares like with like. Per fold: fit on the fold's (purged, embargoed) training rows, predict
its test rows, then classification metrics on P(up) and strategy metrics of the positions it
implies (long above 0.5, short below) after fees and slippage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
import numpy as np

from autoopt.plugins.interfaces import (
    FitFn,
    TrainTask,
    ValidationResult,
    lookback_of,
    predict_rows,
)
from autoopt.validation.metrics import (
    classification_metrics,
    path_metrics,
    positions_from_proba,
    strategy_metrics,
)

_SUMMED = frozenset({"n_trades", "n_periods"})


def fold_metrics(
    task: TrainTask, proba: np.ndarray, test: np.ndarray
) -> tuple[dict[str, float], np.ndarray]:
    """Metrics of one fold's predictions and its per-period net returns."""
    y = np.asarray(task.y)[test]
    cm = classification_metrics(y, proba)
    sm = strategy_metrics(
        positions_from_proba(proba),
        task.forward_returns[test],
        task.periods_per_year,
        task.costs.fee_bps,
        task.costs.slippage_bps,
    )
    out = {k: float(v) for k, v in msgspec.structs.asdict(cm).items()}
    out |= {k: float(v) for k, v in msgspec.structs.asdict(sm.metrics).items()}
    return out, sm.returns


def summarise(
    folds: Sequence[dict[str, float]],
    *,
    path: tuple[np.ndarray, np.ndarray] | None = None,
    periods_per_year: float | None = None,
) -> dict[str, float]:
    """One figure per metric for a verdict and a release.

    Return and risk figures (Sharpe, drawdown, returns...) come from the concatenated
    out-of-sample ``path`` (positions, net returns after costs): a mean of per-fold Sharpes
    or drawdowns is not the Sharpe or drawdown of anything that could have been traded.
    Classification scores are fold means (NaN-aware), counts are summed over folds. Without a
    path (a caller that has none) every figure is a fold mean."""
    keys = list(folds[0])
    out: dict[str, float] = {}
    for k in keys:
        vals = np.asarray([f[k] for f in folds], dtype=np.float64)
        if k in _SUMMED:
            out[k] = float(vals.sum())
        else:
            finite = vals[~np.isnan(vals)]
            out[k] = float(finite.mean()) if finite.size else math.nan
    if path is not None and periods_per_year is not None and path[1].size:
        pooled = msgspec.structs.asdict(path_metrics(path[0], path[1], periods_per_year))
        out |= {k: float(v) for k, v in pooled.items() if k in out and k not in _SUMMED}
    return out


class PurgedCVValidator:
    """Scores a recipe on the task's purged walk-forward folds (the built-in validator)."""

    name = "purged_cv"

    def validate(
        self, task: TrainTask, fit: FitFn, columns: Sequence[int] | None = None
    ) -> ValidationResult:
        X = task.X if columns is None else task.X[:, list(columns)]
        probas = []
        for train, test in task.folds:
            model = fit(X[train], np.asarray(task.y)[train])
            # a sequence model's first test rows get the rows before the block as context
            probas.append(predict_rows(model.predict_proba, lookback_of(model), X, test))
        return self.score(task, probas)

    def score(self, task: TrainTask, probas: Sequence[np.ndarray]) -> ValidationResult:
        """Score given predictions (P(up) on each fold's test rows, in the task's row order):
        `validate` after its fits, or the search's own fold predictions when they are the
        refits (`autoopt.plugins.interfaces.FoldsFit.refit_equal`)."""
        folds: list[dict[str, float]] = []
        returns: list[np.ndarray] = []
        positions: list[np.ndarray] = []
        for proba, (_, test) in zip(probas, task.folds, strict=True):
            metrics, r = fold_metrics(task, proba, test)
            folds.append(metrics)
            returns.append(r)
            positions.append(positions_from_proba(proba))
        path = np.concatenate(returns)
        return ValidationResult(
            fold_metrics=tuple(folds), returns=path,
            metrics=summarise(folds, path=(np.concatenate(positions), path),
                              periods_per_year=task.periods_per_year),
        )


__all__ = ["PurgedCVValidator", "fold_metrics", "summarise"]
