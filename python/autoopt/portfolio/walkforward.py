"""Walk-forward portfolio backtest: weights refitted on a trailing window at each rebalance,
traded after costs, drifting with prices between rebalances.

Timing (no look-ahead): the weights set at the close of bar t are fitted on returns up to and
including t and earn the returns of bars t+1 onwards. Between rebalances each weight drifts:
``w <- w (1 + r) / (1 + w·r)`` after every bar. At a rebalance the trade is the difference
between the target and the drifted weights; ``cost_bps`` is charged on its sum of absolute
values (one-way turnover). The path starts at the first rebalance after ``lookback`` bars, so
every return on it is out of sample for the weights that earned it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from autoopt.errors import DataError
from autoopt.portfolio.weights import fit_weights

DAY_NS = 86_400 * 10**9
_PERIOD = re.compile(r"^(\d+)([DWMB])$")


def rebalance_points(ts: np.ndarray, every: str, start: int) -> list[int]:
    """Rows (>= start) at whose close weights are reset: ``nD``/``nW`` calendar days/weeks,
    ``nM`` months (the last bar of each n-th calendar month), ``nB`` every n bars."""
    m = _PERIOD.match(every.strip().upper())
    if not m or int(m.group(1)) < 1:
        raise DataError(f"portfolio: --rebalance {every!r}: use nD, nW, nM or nB (e.g. 1M, 2W, 21B)")
    n, unit = int(m.group(1)), m.group(2)
    rows = np.arange(ts.size)
    if unit == "B":
        return [int(i) for i in rows[start:-1:n]]
    if unit == "M":
        months = ts.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
        keys = months // n
    else:
        days = ts // DAY_NS
        keys = days // (n * (7 if unit == "W" else 1))
    # the last bar of each period (its close is when the new weights are set)
    last = np.flatnonzero(np.diff(keys) != 0)
    out = [int(i) for i in last if start <= i < ts.size - 1]
    return out if out and out[0] == start else [start, *[i for i in out if i > start]]


@dataclass(frozen=True)
class PortfolioPath:
    method: str
    ts: np.ndarray
    """Bar timestamps of ``returns`` (the bars after the first rebalance)."""
    returns: np.ndarray
    turnover: np.ndarray
    rebalances: list[int]
    weights: np.ndarray
    """Target weights at each rebalance (rebalances x assets)."""


def walk_forward(returns: np.ndarray, ts: np.ndarray, method: str, *, lookback: int = 252,
                 rebalance: str = "1M", cost_bps: float = 0.0, max_weight: float = 1.0
                 ) -> PortfolioPath:
    """The walk-forward path of ``method`` (module doc). ``returns[t]``: asset returns of bar t
    (close t-1 to close t); row 0 is ignored."""
    r = np.asarray(returns, dtype=np.float64)
    n, k = r.shape
    if lookback < 10 or n < lookback + 20:
        raise DataError(f"portfolio: {n} bars are too few for a lookback of {lookback} (need "
                        f"lookback >= 10 and 20 bars after it)")
    points = rebalance_points(np.asarray(ts, dtype=np.int64), rebalance, lookback)
    cost = cost_bps / 1e4
    out = np.zeros(n)
    turn = np.zeros(n)
    targets = np.zeros((len(points), k))
    w = np.zeros(k)
    next_i = 0
    for t in range(points[0], n - 1):
        if next_i < len(points) and points[next_i] == t:
            target = fit_weights(r[t - lookback + 1:t + 1], method, max_weight=max_weight)
            targets[next_i] = target
            trade = float(np.abs(target - w).sum())
            w = target
            next_i += 1
        else:
            trade = 0.0
        gross = float(w @ r[t + 1])
        out[t + 1] = gross - cost * trade
        turn[t + 1] = trade
        w = w * (1.0 + r[t + 1]) / (1.0 + gross)  # drift with prices until the next rebalance
    s = points[0] + 1
    return PortfolioPath(method, np.asarray(ts)[s:], out[s:], turn[s:], points, targets)


__all__ = ["PortfolioPath", "rebalance_points", "walk_forward"]
