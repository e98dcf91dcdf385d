"""Classification and strategy metrics against values worked out by hand (and scipy identities)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from autoopt.errors import DataError
from autoopt.validation.metrics import (
    accuracy,
    classification_metrics,
    log_loss,
    max_drawdown,
    positions_from_proba,
    precision,
    recall,
    roc_auc,
    sharpe_ratio,
    sortino_ratio,
    strategy_metrics,
    strategy_returns,
    trades,
)


def test_accuracy_precision_recall_hand() -> None:
    y = [1, 0, 1, 1, 0, 0]
    p = [1, 1, 0, 1, 0, 0]
    assert accuracy(y, p) == pytest.approx(4 / 6)
    assert precision(y, p) == pytest.approx(2 / 3)  # TP=2, FP=1
    assert recall(y, p) == pytest.approx(2 / 3)  # TP=2, FN=1
    assert precision(y, [0] * 6) == 0.0  # nothing predicted positive
    # macro over {-1, 0, 1}: precision per class 1/1, 1/2, 1/1 ; recall 1/2, 1/1, 1/1
    y3, p3 = [-1, -1, 0, 1], [-1, 0, 0, 1]
    assert precision(y3, p3, average="macro") == pytest.approx((1 + 0.5 + 1) / 3)
    assert recall(y3, p3, average="macro") == pytest.approx((0.5 + 1 + 1) / 3)


def test_log_loss_hand() -> None:
    assert log_loss([1, 0, 1], [0.9, 0.2, 0.6]) == pytest.approx(
        -(math.log(0.9) + math.log(0.8) + math.log(0.6)) / 3
    )
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    assert log_loss([-1, 0, 1], proba) == pytest.approx(
        -(math.log(0.7) + math.log(0.8) + math.log(0.4)) / 3
    )
    with pytest.raises(DataError, match="0/1"):
        log_loss([2, 0], [0.5, 0.5])


def test_auc_hand_and_mann_whitney_identity() -> None:
    # pairs (pos, neg): (0.35,0.1)✓ (0.35,0.4)✗ (0.8,0.1)✓ (0.8,0.4)✓ → 3/4
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts half
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 400)
    s = np.round(rng.normal(size=400) + 0.5 * y, 1)  # rounding makes ties
    u = stats.mannwhitneyu(s[y == 1], s[y == 0]).statistic
    assert roc_auc(y, s) == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()), rel=1e-12)
    with pytest.raises(DataError, match="both classes"):
        roc_auc([1, 1], [0.2, 0.3])


def test_classification_metrics_bundle() -> None:
    m = classification_metrics([1, 0, 1, 0], [0.8, 0.3, 0.4, 0.6])
    assert (m.accuracy, m.precision, m.recall, m.auc) == pytest.approx((0.5, 0.5, 0.5, 0.75))


def test_strategy_hand_example() -> None:
    pos = [1.0, 1.0, 0.0, -1.0]
    fwd = [0.01, -0.02, 0.03, -0.01]
    # costs 10 bps per unit turnover; turnover = 1, 0, 1, 1
    expected = np.array([0.009, -0.02, -0.001, 0.009])
    np.testing.assert_allclose(strategy_returns(pos, fwd, fee_bps=7, slippage_bps=3), expected)
    res = strategy_metrics(pos, fwd, periods_per_year=252, fee_bps=7, slippage_bps=3)
    m = res.metrics
    np.testing.assert_allclose(res.returns, expected)
    assert m.n_trades == 2  # long run [0, 2) and short run [3, 4)
    assert m.hit_rate == pytest.approx(0.5)  # long: 1.009 × 0.98 < 1 lost; short won
    assert m.turnover == pytest.approx(0.75)
    assert m.exposure == pytest.approx(0.75)
    assert m.total_return == pytest.approx(1.009 * 0.98 * 0.999 * 1.009 - 1)
    assert m.max_drawdown == pytest.approx(1 - 1.009 * 0.98 * 0.999 / 1.009)
    mean, sd = expected.mean(), expected.std(ddof=1)
    assert m.sharpe == pytest.approx(mean / sd * math.sqrt(252))
    down = math.sqrt(np.mean(np.minimum(expected, 0) ** 2))
    assert m.sortino == pytest.approx(mean / down * math.sqrt(252))
    annual = (1 + m.total_return) ** (252 / 4) - 1
    assert m.annual_return == pytest.approx(annual)
    assert m.calmar == pytest.approx(annual / m.max_drawdown)
    assert m.skew == pytest.approx(stats.skew(expected))
    assert m.kurtosis == pytest.approx(stats.kurtosis(expected, fisher=False))


def test_flip_costs_two_units_and_trades_split() -> None:
    r = strategy_returns([1.0, -1.0], [0.0, 0.0], fee_bps=10)
    np.testing.assert_allclose(r, [-0.001, -0.002])
    assert trades([0, 1, 1, -1, -1, 0, 1]) == [(1, 3), (3, 5), (6, 7)]


def test_degenerate_series() -> None:
    flat = strategy_metrics([0.0] * 5, [0.01, -0.01, 0.02, 0.0, 0.01], periods_per_year=252)
    m = flat.metrics
    assert (m.sharpe, m.n_trades, m.hit_rate, m.max_drawdown, m.total_return) == (0.0, 0, 0.0, 0.0, 0.0)
    assert sortino_ratio([0.01, 0.02]) == math.inf and sharpe_ratio([0.01]) == 0.0
    assert max_drawdown([0.1, -0.5, 0.2]) == pytest.approx(0.5)


def test_positions_from_proba_and_bad_input() -> None:
    p = [0.9, 0.52, 0.5, 0.3]
    assert positions_from_proba(p, band=0.05).tolist() == [1.0, 0.0, 0.0, -1.0]
    assert positions_from_proba(p, allow_short=False).tolist() == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(DataError, match="finite"):
        strategy_returns([1.0, math.nan], [0.0, 0.0])
    with pytest.raises(DataError, match="rows"):
        strategy_returns([1.0], [0.0, 0.0])
