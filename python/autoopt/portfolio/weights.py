"""Long-only weights from a window of asset returns, by skfolio's estimators.

Why skfolio: its optimisers are maintained, tested against the literature and share one
scikit-learn interface, so each method here is one line of configuration instead of a
hand-written solver. The methods:

- ``inverse_vol``: w ∝ 1/σ (`InverseVolatility`).
- ``hrp``: Hierarchical Risk Parity (López de Prado 2016; `HierarchicalRiskParity`).
- ``risk_parity``: equal variance contributions (`RiskBudgeting`).
- ``mean_cvar``: the maximum ratio of mean return to CVaR at 95 % (`MeanRisk`).
- ``min_cdar``: the minimum Conditional Drawdown at Risk (`MeanRisk`).
- ``equal``: 1/N, the baseline every method must beat.

Every method is long-only with weights in [0, ``max_weight``] summing to 1; a solver that fails
or returns something else is a `DataError` naming the method and the window.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autoopt.errors import DataError, PluginError
from autoopt.portfolio import METHODS


def _estimator(method: str, max_weight: float) -> Any:
    try:
        from skfolio import RiskMeasure
        from skfolio.optimization import (
            EqualWeighted,
            HierarchicalRiskParity,
            InverseVolatility,
            MeanRisk,
            ObjectiveFunction,
            RiskBudgeting,
        )
    except ImportError:
        raise PluginError("portfolio weights need skfolio: pip install 'autoopt[portfolio]'") from None
    if method == "equal":
        return EqualWeighted()
    if method == "inverse_vol":
        return InverseVolatility()
    if method == "hrp":
        return HierarchicalRiskParity(min_weights=0.0, max_weights=max_weight)
    if method == "risk_parity":
        return RiskBudgeting(risk_measure=RiskMeasure.VARIANCE, min_weights=0.0,
                             max_weights=max_weight)
    if method == "mean_cvar":
        return MeanRisk(risk_measure=RiskMeasure.CVAR,
                        objective_function=ObjectiveFunction.MAXIMIZE_RATIO, min_weights=0.0,
                        max_weights=max_weight)
    if method == "min_cdar":
        return MeanRisk(risk_measure=RiskMeasure.CDAR,
                        objective_function=ObjectiveFunction.MINIMIZE_RISK, min_weights=0.0,
                        max_weights=max_weight)
    raise DataError(f"portfolio: unknown method {method!r} ({', '.join(METHODS)}, equal)")


def check_method(method: str) -> str:
    if method not in (*METHODS, "equal"):
        raise DataError(f"portfolio: unknown method {method!r} ({', '.join(METHODS)})")
    return method


def fit_weights(returns: np.ndarray, method: str, *, max_weight: float = 1.0) -> np.ndarray:
    """Weights (sum 1, each in [0, max_weight]) for a (periods x assets) window of returns."""
    check_method(method)
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 10 or r.shape[1] < 2:
        raise DataError(f"portfolio: need a (periods >= 10, assets >= 2) return window, got {r.shape}")
    if not np.all(np.isfinite(r)):
        raise DataError("portfolio: returns contain NaN or inf")
    k = r.shape[1]
    if not 1.0 / k <= max_weight <= 1.0:
        raise DataError(f"portfolio: max_weight {max_weight} must be in [1/{k}, 1] for {k} assets")
    if method == "inverse_vol" and max_weight < 1.0:
        method_est = _estimator("risk_parity", max_weight)  # inverse vol has no bounds: nearest
    else:
        method_est = _estimator(method, max_weight)
    try:
        method_est.fit(r)
        w = np.asarray(method_est.weights_, dtype=np.float64)
    except Exception as exc:  # solver failures come as many types
        raise DataError(f"portfolio: {method} failed on a {r.shape} window: {exc}") from None
    if w.shape != (k,) or not np.all(np.isfinite(w)):
        raise DataError(f"portfolio: {method} returned invalid weights {w}")
    w = np.clip(w, 0.0, max_weight)
    total = w.sum()
    if total <= 0:
        raise DataError(f"portfolio: {method} returned all-zero weights")
    return w / total


__all__ = ["check_method", "fit_weights"]
