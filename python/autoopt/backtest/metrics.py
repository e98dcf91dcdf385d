"""Figures of a backtest path: what a policy earned, per symbol and for the equal-weight pool.

Why here and not per fold: the figures are computed on the whole concatenated out-of-sample path
a policy traded (one Sharpe of all its bars), never as averages of per-fold figures, which would
weight a short fold like a long one and hide the drawdown that spans two folds. The ratios
themselves come from `autoopt.validation.metrics`, so a backtest and the release gate measure
the same thing the same way.

The pool (`pooled_path`)
    An equal-weight portfolio of the symbols, rebalanced every bar: its return at a timestamp is
    the mean over *all* N symbols of their returns there, a symbol without a bar at that
    timestamp contributing 0 (its 1/N of capital sits in cash). Its position is the mean
    position (net exposure), each symbol's position held from its last bar (flat before its
    first). Its ``trades`` are the symbols' trades added up and its ``turnover`` the symbols'
    position changes ``Σ_s Σ |Δposition_s|`` over ``N`` times its bars (gross, what costs were
    charged on), not figures of the netted mean position.

Annualisation of the pool (`pooled_periods_per_year`): the largest ``periods_per_year`` of its
symbols, since the union of their timestamps is at least as dense as the densest symbol's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from autoopt.backtest.result import PolicyResult, SymbolPath
from autoopt.errors import DataError
from autoopt.validation.metrics import path_metrics as strategy_path_metrics

POOLED = "pooled"

METRIC_KEYS = (
    "total_return",
    "annual_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "hit_rate",
    "turnover",
    "trades",
    "n_bars",
)


def _finite(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise DataError(f"{name}[{bad}] is {arr[bad]}: must be finite")
    return arr


def path_metrics(
    returns: Sequence[float] | np.ndarray,
    positions: Sequence[float] | np.ndarray,
    periods_per_year: float,
) -> dict[str, float]:
    """Figures of one path of net per-bar returns (after costs) and the positions that earned
    them. Ratios are annualised with ``periods_per_year``; ``hit_rate`` is the fraction of trades
    (maximal runs of one non-zero position) whose compounded net return is > 0; ``turnover`` the
    mean ``|Δposition|`` per bar (flat before the first). An empty path has all figures 0."""
    r = _finite(returns, "returns")
    pos = _finite(positions, "positions")
    if r.size != pos.size:
        raise DataError(f"returns has {r.size} bars but positions {pos.size}; need equal")
    if not periods_per_year > 0:
        raise DataError(f"periods_per_year must be > 0, got {periods_per_year}")
    n = r.size
    if n == 0:
        return dict.fromkeys(METRIC_KEYS, 0.0)
    m = strategy_path_metrics(pos, r, periods_per_year)
    return {
        "total_return": m.total_return,
        "annual_return": m.annual_return,
        "sharpe": m.sharpe,
        "sortino": m.sortino,
        "max_drawdown": m.max_drawdown,
        "calmar": m.calmar,
        "hit_rate": m.hit_rate,
        "turnover": m.turnover,
        "trades": float(m.n_trades),
        "n_bars": float(n),
    }


def _columns(path: SymbolPath) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ts = np.asarray(path.ts, dtype=np.int64)
    r = _finite(path.returns, f"{path.symbol}.returns")
    pos = _finite(path.positions, f"{path.symbol}.positions")
    if not ts.size == r.size == pos.size:
        raise DataError(
            f"{path.symbol}: ts, returns and positions have {ts.size}, {r.size} and {pos.size} "
            "rows; need equal"
        )
    if ts.size > 1 and not (np.diff(ts) > 0).all():
        raise DataError(f"{path.symbol}: ts must be strictly increasing")
    return ts, r, pos


def _aligned(paths: Mapping[str, SymbolPath]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(union ts, returns per symbol on it (rows; 0 where a symbol has no bar), positions per
    symbol on it (held from the symbol's last bar, flat before its first), gross turnover)."""
    if not paths:
        raise DataError("pooled path of no symbols: a policy result has no paths")
    cols = [_columns(p) for p in paths.values()]
    ts = np.unique(np.concatenate([c[0] for c in cols]))
    rets = np.zeros((len(cols), ts.size))
    poss = np.zeros((len(cols), ts.size))
    changes = 0.0
    for i, (t, r, pos) in enumerate(cols):
        rets[i, np.searchsorted(ts, t)] = r
        last = np.searchsorted(t, ts, side="right") - 1
        poss[i] = np.where(last >= 0, pos[np.maximum(last, 0)], 0.0) if t.size else 0.0
        changes += float(np.abs(np.diff(pos, prepend=0.0)).sum())
    turnover = changes / (len(cols) * ts.size) if ts.size else 0.0
    return ts, rets, poss, turnover


def pooled_path(paths: Mapping[str, SymbolPath]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts, returns, positions) of the equal-weight pool of ``paths`` on the union of their
    timestamps; a symbol without a bar at a timestamp contributes 0 (see the module doc)."""
    ts, rets, poss, _ = _aligned(paths)
    return ts, rets.mean(axis=0), poss.mean(axis=0)


def pooled_periods_per_year(paths: Mapping[str, SymbolPath]) -> float:
    """The pool's bars per year: the largest of its symbols' (see the module doc)."""
    if not paths:
        raise DataError("pooled path of no symbols: a policy result has no paths")
    return max(p.periods_per_year for p in paths.values())


def fill_metrics(result: PolicyResult) -> PolicyResult:
    """Fill ``result.metrics`` (per symbol and ``"pooled"``) and ``result.mean_model_age_s``
    (mean over every traded bar of every symbol where a model traded; 0.0 when none did), in
    place; returns ``result`` for chaining."""
    metrics: dict[str, dict[str, float]] = {}
    for symbol, path in result.paths.items():
        _, r, pos = _columns(path)
        metrics[symbol] = path_metrics(r, pos, path.periods_per_year)
    _, rets, poss, turnover = _aligned(result.paths)
    pooled = path_metrics(
        rets.mean(axis=0), poss.mean(axis=0), pooled_periods_per_year(result.paths)
    )
    pooled["turnover"] = turnover
    pooled["trades"] = float(sum(m["trades"] for m in metrics.values()))
    metrics[POOLED] = pooled
    result.metrics = metrics
    ages = np.concatenate(
        [np.asarray(p.model_age_s, dtype=np.float64) for p in result.paths.values()]
    )
    ages = ages[np.isfinite(ages)]
    result.mean_model_age_s = float(ages.mean()) if ages.size else 0.0
    return result


__all__ = [
    "METRIC_KEYS",
    "POOLED",
    "fill_metrics",
    "path_metrics",
    "pooled_path",
    "pooled_periods_per_year",
]
