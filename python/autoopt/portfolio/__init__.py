"""Portfolio weights in the loop: skfolio estimators (`weights`), a walk-forward with costs and
weight drift (`walkforward`), the 1/N gate (`gate`) and releases (`release`).

skfolio (scikit-learn, cvxpy) is heavy and optional (``pip install autoopt[portfolio]``): it
is imported the first time weights are fitted, never by ``import autoopt.portfolio``.
"""

METHODS = ("inverse_vol", "hrp", "risk_parity", "mean_cvar", "min_cdar")

__all__ = ["METHODS"]
