"""Classification metrics and after-cost strategy metrics, in numpy/scipy (no scikit-learn).

Strategy timing convention (the one place look-ahead could creep in): ``positions[t]`` is decided
with information up to the close of bar t and is held over the next bar, so it earns
``forward_returns[t] = close[t+1] / close[t] - 1``. Changing position costs
``(fee_bps + slippage_bps) / 1e4`` per unit of turnover ``|positions[t] - positions[t-1]|``
(flat before the first bar), charged in the period the trade happens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec
import numpy as np

from autoopt.errors import DataError

ArrayLike = np.ndarray | Sequence[float]


def _pair(y_true: ArrayLike, y_other: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(y_true), np.asarray(y_other)
    if a.shape[0] != b.shape[0] or a.shape[0] == 0:
        raise DataError(f"{name}: y_true has {a.shape[0]} rows, other input {b.shape[0]}; need equal, > 0")
    return a, b


# --------------------------------------------------------------------------- classification


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    a, b = _pair(y_true, y_pred, "accuracy")
    return float(np.mean(a == b))


def _prec_rec(a: np.ndarray, b: np.ndarray, positive: object) -> tuple[float, float]:
    tp = float(np.sum((b == positive) & (a == positive)))
    pred_pos = float(np.sum(b == positive))
    true_pos = float(np.sum(a == positive))
    return (tp / pred_pos if pred_pos else 0.0), (tp / true_pos if true_pos else 0.0)


def precision(
    y_true: ArrayLike, y_pred: ArrayLike, positive: object = 1,
    average: Literal["binary", "macro"] = "binary",
) -> float:
    """TP / (TP + FP) for `positive`; "macro" averages over every class in y_true ∪ y_pred.

    0.0 when nothing was predicted positive.
    """
    a, b = _pair(y_true, y_pred, "precision")
    if average == "macro":
        return float(np.mean([_prec_rec(a, b, c)[0] for c in np.union1d(a, b)]))
    return _prec_rec(a, b, positive)[0]


def recall(
    y_true: ArrayLike, y_pred: ArrayLike, positive: object = 1,
    average: Literal["binary", "macro"] = "binary",
) -> float:
    """TP / (TP + FN) for `positive`; "macro" averages over every class in y_true ∪ y_pred."""
    a, b = _pair(y_true, y_pred, "recall")
    if average == "macro":
        return float(np.mean([_prec_rec(a, b, c)[1] for c in np.union1d(a, b)]))
    return _prec_rec(a, b, positive)[1]


def log_loss(
    y_true: ArrayLike, proba: ArrayLike, labels: Sequence[object] | None = None, eps: float = 1e-15
) -> float:
    """Mean negative log-likelihood.

    Binary: `proba` is P(y == 1), y_true in {0, 1}. Multiclass: `proba` is (n, k) with columns in
    the order of `labels` (default: sorted unique y_true). Probabilities are clipped to [eps, 1-eps].
    """
    a, p = _pair(y_true, proba, "log_loss")
    p = np.clip(p.astype(np.float64), eps, 1 - eps)
    if p.ndim == 1:
        if not np.all(np.isin(a, (0, 1))):
            raise DataError("log_loss: binary y_true must be 0/1; pass 2-D proba for multiclass")
        return float(-np.mean(np.where(a == 1, np.log(p), np.log1p(-p))))
    classes = np.asarray(labels) if labels is not None else np.unique(a)
    if p.shape[1] != classes.size:
        raise DataError(f"log_loss: proba has {p.shape[1]} columns for {classes.size} labels")
    col = np.searchsorted(classes, a) if labels is None else np.array(
        [list(classes).index(v) for v in a]
    )
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(a.size), col])))


def roc_auc(y_true: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve, P(score_pos > score_neg) + ½ P(tie), via average ranks."""
    from scipy import stats  # ~1 s to import: only where a statistic needs it

    a, s = _pair(y_true, score, "roc_auc")
    pos = a == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise DataError("roc_auc: y_true needs both classes (1 and not-1)")
    ranks = stats.rankdata(s.astype(np.float64))
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class ClassificationMetrics(msgspec.Struct, frozen=True):
    accuracy: float
    precision: float
    recall: float
    log_loss: float
    auc: float


def classification_metrics(
    y_true: ArrayLike, proba: ArrayLike, threshold: float = 0.5
) -> ClassificationMetrics:
    """Binary metrics from P(y == 1): predictions are proba > threshold. AUC is NaN with one class."""
    a, p = _pair(y_true, proba, "classification_metrics")
    pred = (p > threshold).astype(a.dtype)
    both = np.unique(a).size == 2
    return ClassificationMetrics(
        accuracy=accuracy(a, pred),
        precision=precision(a, pred),
        recall=recall(a, pred),
        log_loss=log_loss(a, p),
        auc=roc_auc(a, p) if both else math.nan,
    )


# --------------------------------------------------------------------------- strategy


def positions_from_proba(
    proba: ArrayLike, band: float = 0.0, allow_short: bool = True
) -> np.ndarray:
    """Long (+1) when P(up) > 0.5 + band, short (-1) when < 0.5 - band (or flat), else flat."""
    p = np.asarray(proba, dtype=np.float64)
    short = -1.0 if allow_short else 0.0
    return np.where(p > 0.5 + band, 1.0, np.where(p < 0.5 - band, short, 0.0))


def strategy_returns(
    positions: ArrayLike, forward_returns: ArrayLike, fee_bps: float = 0.0, slippage_bps: float = 0.0
) -> np.ndarray:
    """Per-period net simple returns: position × forward return − cost × turnover."""
    pos, fwd = _pair(positions, forward_returns, "strategy_returns")
    pos = pos.astype(np.float64)
    fwd = fwd.astype(np.float64)
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(fwd))):
        raise DataError("strategy_returns: positions and forward_returns must be finite")
    if fee_bps < 0 or slippage_bps < 0:
        raise DataError("strategy_returns: fee_bps and slippage_bps must be >= 0")
    turnover = np.abs(np.diff(pos, prepend=0.0))
    return pos * fwd - (fee_bps + slippage_bps) / 1e4 * turnover


def sharpe_ratio(returns: ArrayLike, periods_per_year: float = 1.0) -> float:
    """mean / std (ddof=1) × sqrt(periods_per_year); 0.0 when all returns are equal or n < 2."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2 or np.ptp(r) == 0:
        return 0.0
    return float(r.mean() / r.std(ddof=1) * math.sqrt(periods_per_year))


def sortino_ratio(returns: ArrayLike, periods_per_year: float = 1.0) -> float:
    """mean / downside deviation (target 0, over all periods) × sqrt(periods_per_year).

    With no losing period: +inf if the mean is positive, else 0.0.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.size == 0:
        return 0.0
    dd = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if dd == 0:
        return math.inf if r.mean() > 0 else 0.0
    return float(r.mean() / dd * math.sqrt(periods_per_year))


def max_drawdown(returns: ArrayLike) -> float:
    """Largest peak-to-trough fall of the compounded equity curve (starting at 1), as a fraction."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size == 0:
        return 0.0
    equity = np.concatenate(([1.0], np.cumprod(1.0 + r)))
    peak = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peak))


def trades(positions: ArrayLike) -> list[tuple[int, int]]:
    """(start, end_exclusive) of each trade: a maximal run of one constant non-zero position."""
    pos = np.asarray(positions, dtype=np.float64)
    if pos.size == 0:
        return []
    change = np.flatnonzero(np.diff(pos) != 0) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [pos.size]))
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True) if pos[s] != 0]


class StrategyMetrics(msgspec.Struct, frozen=True):
    """After-cost performance of one return series. Ratios annualised with periods_per_year."""

    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    hit_rate: float
    """Fraction of trades whose compounded net return is > 0 (0.0 with no trades)."""
    turnover: float
    """Mean |Δposition| per period."""
    n_trades: int
    total_return: float
    annual_return: float
    exposure: float
    """Fraction of periods with a non-zero position."""
    n_periods: int
    skew: float
    kurtosis: float
    """Pearson (non-excess) kurtosis of the period returns: 3 for a normal; what DSR wants."""


@dataclass(frozen=True)
class StrategyResult:
    """Metrics plus the per-period net return series they came from (needed by the DSR)."""

    metrics: StrategyMetrics
    returns: np.ndarray


def strategy_metrics(
    positions: ArrayLike,
    forward_returns: ArrayLike,
    periods_per_year: float,
    fee_bps: float = 0.0,
    slippage_bps: float = 0.0,
) -> StrategyResult:
    """Evaluate positions against forward returns after costs (see module docstring for timing)."""
    if periods_per_year <= 0:
        raise DataError(f"strategy_metrics: periods_per_year must be > 0, got {periods_per_year}")
    pos = np.asarray(positions, dtype=np.float64)
    r = strategy_returns(pos, forward_returns, fee_bps, slippage_bps)
    return StrategyResult(path_metrics(pos, r, periods_per_year), r)


def path_metrics(
    positions: np.ndarray, returns: np.ndarray, periods_per_year: float
) -> StrategyMetrics:
    """The figures of a traded path: net per-period ``returns`` (after costs) earned by
    ``positions``; one computation for validation folds and backtest paths."""
    from scipy import stats  # ~1 s to import: only where a statistic needs it

    pos, r = positions, returns
    n = r.size
    total = float(np.prod(1.0 + r) - 1.0)
    annual = (1.0 + total) ** (periods_per_year / n) - 1.0 if total > -1 else -1.0
    mdd = max_drawdown(r)
    if mdd > 0:
        calmar = annual / mdd
    else:
        calmar = math.inf if annual > 0 else 0.0
    runs = trades(pos)
    wins = sum(1 for s, e in runs if np.prod(1.0 + r[s:e]) - 1.0 > 0)
    varies = n > 0 and np.ptp(r) > 0
    skew = float(stats.skew(r)) if n > 2 and varies else 0.0
    kurt = float(stats.kurtosis(r, fisher=False)) if n > 3 and varies else 3.0
    return StrategyMetrics(
        sharpe=sharpe_ratio(r, periods_per_year),
        sortino=sortino_ratio(r, periods_per_year),
        calmar=float(calmar),
        max_drawdown=mdd,
        hit_rate=wins / len(runs) if runs else 0.0,
        turnover=float(np.mean(np.abs(np.diff(pos, prepend=0.0)))),
        n_trades=len(runs),
        total_return=total,
        annual_return=float(annual),
        exposure=float(np.mean(pos != 0)),
        n_periods=n,
        skew=skew,
        kurtosis=kurt,
    )


__all__ = [
    "ClassificationMetrics",
    "StrategyMetrics",
    "StrategyResult",
    "accuracy",
    "classification_metrics",
    "log_loss",
    "max_drawdown",
    "path_metrics",
    "positions_from_proba",
    "precision",
    "recall",
    "roc_auc",
    "sharpe_ratio",
    "sortino_ratio",
    "strategy_metrics",
    "strategy_returns",
    "trades",
]
