"""The always-valid mSPRT: false positives stay under alpha with a look after every batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from autoopt.ab import sequential
from autoopt.errors import DataError

SIMS, LOOKS, BATCH = 400, 60, 25  # 400 experiments, a look after each batch of 25 trades per arm


def _cumulative_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and ddof=1 variance after each batch, for every simulated experiment."""
    n = np.arange(1, LOOKS + 1) * BATCH
    s1 = np.cumsum(x, axis=1)[:, n - 1]
    s2 = np.cumsum(x * x, axis=1)[:, n - 1]
    mean = s1 / n
    var = (s2 - s1 * mean) / (n - 1)
    return mean, var, n


def _simulate(effect: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(always-valid p, naive t-test p, CS half-width, diff) per experiment and look; returns are
    heavy-tailed (Student t, 5 df), unit variance."""
    rng = np.random.default_rng(seed)
    scale = math.sqrt(3 / 5)
    a = scale * rng.standard_t(5, size=(SIMS, LOOKS * BATCH))
    b = effect + scale * rng.standard_t(5, size=(SIMS, LOOKS * BATCH))
    ma, va, n = _cumulative_moments(a)
    mb, vb, _ = _cumulative_moments(b)
    diff = mb - ma
    se = np.sqrt(va / n + vb / n)
    p, half = sequential.msprt_arrays(diff, se, 2 * n, alpha=0.05, tuning=5000)
    naive = 2 * sps.t.sf(np.abs(diff / se), 2 * n - 2)
    return p, naive, half, diff


def test_false_positive_rate_with_continuous_peeking() -> None:
    p, naive, half, diff = _simulate(0.0, seed=2024)
    fpr = np.mean((p < 0.05).any(axis=1))
    naive_fpr = np.mean((naive < 0.05).any(axis=1))
    assert fpr <= 0.05
    assert naive_fpr > 0.15  # what peeking does to a fixed-horizon test
    # the confidence sequence covers the true difference (0) at every look, jointly
    covered = np.all(np.abs(diff) <= half, axis=1)
    assert covered.mean() >= 0.95


def test_power_under_a_real_difference() -> None:
    p, _, half, diff = _simulate(0.15, seed=7)
    power = np.mean((p < 0.05).any(axis=1))
    assert power > 0.8
    assert np.all(half[:, -1] < half[:, 0])  # the sequence narrows as trades accumulate


def test_rho_matches_growthbook_formula() -> None:
    # alpha 0.05, N* 5000: -2 ln .05 = 5.9914645, ln(6.9914645) = 1.9446901,
    # rho² = (5.9914645 + 1.9446901) / 5000 = 0.00158723092
    assert sequential.sequential_rho(0.05, 5000) ** 2 == pytest.approx(0.00158723092, rel=1e-8)


def test_monitor_keeps_running_minimum_and_intersection() -> None:
    mon = sequential.SequentialMonitor(alpha=0.05, tuning=1000)
    strong = mon.update(0.0, 1.0, 500, 0.3, 1.0, 500)
    assert strong.significant and strong.p_now == strong.p_value
    weaker = mon.update(0.0, 1.0, 600, 0.05, 1.0, 600)
    assert weaker.p_now > strong.p_value
    assert weaker.p_value == strong.p_value and weaker.significant
    assert weaker.ci_low >= strong.ci_low and weaker.ci_high <= strong.ci_high
    single = sequential.msprt(0.0, 1.0, 600, 0.05, 1.0, 600, alpha=0.05, tuning=1000)
    assert single.p_value == pytest.approx(weaker.p_now)
    assert single.ci_low <= weaker.ci_low


def test_bad_looks_are_refused() -> None:
    with pytest.raises(DataError, match="at least 2 trades per arm"):
        sequential.msprt(0.0, 1.0, 1, 0.0, 1.0, 10)
    with pytest.raises(DataError, match="alpha"):
        sequential.SequentialMonitor(alpha=1.5)
