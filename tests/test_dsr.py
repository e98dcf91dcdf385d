"""Deflated Sharpe Ratio against Bailey & López de Prado (2014), and PSR/E[max] sanity checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from autoopt.errors import DataError
from autoopt.validation.dsr import (
    deannualise,
    deflated_sharpe_from_returns,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    sharpe_moments,
)


def test_paper_worked_example() -> None:
    """Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", section on the numerical example.

    The paper states everything annualised: SR = 2.5, V[SR_n] = 0.5 across N = 100 trials, over
    T = 1250 daily observations (5 years × 250 days), returns with skew −3 and kurtosis 10 (Pearson,
    so a normal would be 3). The formulas need per-observation figures, and the paper converts
    with 250 days a year: SR = 2.5 / √250 ≈ 0.1581 and V = 0.5 / 250 = 0.002. Then
      E[max SR] = √0.002 × ((1−γ) Φ⁻¹(1 − 1/100) + γ Φ⁻¹(1 − 1/(100e))) ≈ 0.1132 per day
      (≈ 1.79 annualised), and
      DSR = Φ( (0.1581 − 0.1132) √1249 / √(1 + 3 × 0.1581 + (10−1)/4 × 0.1581²) ) = Φ(1.2835) ≈ 0.9004,
    which is the paper's "DSR ≈ 0.9004": not significant at 95% despite an annual SR of 2.5.
    """
    sr, var = deannualise(2.5, 0.5, 250)
    assert sr == pytest.approx(0.158114, abs=1e-6) and var == pytest.approx(0.002)
    assert expected_max_sharpe(100, var) == pytest.approx(0.1132, abs=1e-4)
    dsr = deflated_sharpe_ratio(sr, n_obs=1250, n_trials=100, sr_variance=var, skew=-3.0, kurtosis=10.0)
    assert dsr == pytest.approx(0.90, abs=0.01)
    assert dsr == pytest.approx(0.9004, abs=1e-3)


def test_psr_reduces_to_normal_z_for_gaussian_moments() -> None:
    # skew 0, kurtosis 3: PSR = Φ(SR √(T−1) / √(1 + SR²/2))
    sr, t = 0.1, 500
    z = sr * math.sqrt(t - 1) / math.sqrt(1 + sr * sr / 2)
    assert probabilistic_sharpe_ratio(sr, 0.0, t) == pytest.approx(stats.norm.cdf(z))
    assert probabilistic_sharpe_ratio(0.0, 0.0, t) == pytest.approx(0.5)
    # negative skew and fat tails widen the SR's error bars → lower PSR for a positive SR
    assert probabilistic_sharpe_ratio(sr, 0.0, t, skew=-2, kurtosis=9) < probabilistic_sharpe_ratio(sr, 0.0, t)


def test_expected_max_grows_with_trials_and_matches_simulation() -> None:
    values = [expected_max_sharpe(n, 1.0) for n in (1, 2, 10, 100, 1000)]
    assert values[0] == 0.0 and values == sorted(values)
    rng = np.random.default_rng(0)
    sims = rng.normal(size=(20000, 100)).max(axis=1).mean()  # E[max of 100 N(0,1)] ≈ 2.508
    assert expected_max_sharpe(100, 1.0) == pytest.approx(sims, abs=0.03)


def test_dsr_from_returns_uses_series_moments() -> None:
    rng = np.random.default_rng(5)
    r = rng.standard_t(df=5, size=2000) * 0.01 + 0.001
    sr, n, skew, kurt = sharpe_moments(r)
    assert n == 2000 and kurt > 3.5  # fat tails seen
    assert deflated_sharpe_from_returns(r, 20, 0.001) == pytest.approx(
        deflated_sharpe_ratio(sr, n, 20, 0.001, skew, kurt)
    )
    # more trials at the same variance → a higher bar → lower DSR
    assert deflated_sharpe_from_returns(r, 200, 0.001) < deflated_sharpe_from_returns(r, 20, 0.001)


def test_bad_inputs() -> None:
    with pytest.raises(DataError, match="n_trials"):
        expected_max_sharpe(0, 1.0)
    with pytest.raises(DataError, match="n_obs"):
        probabilistic_sharpe_ratio(0.1, 0.0, 1)
    with pytest.raises(DataError, match="finite"):
        sharpe_moments([0.1, math.nan, 0.2, 0.3])
