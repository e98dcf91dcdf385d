"""Probabilistic and Deflated Sharpe Ratio (Bailey & López de Prado, 2012 and 2014).

All Sharpe ratios here are **per period** (not annualised), with the same period as the returns
they describe; variances of Sharpe ratios likewise. To use annualised figures, divide SR by
sqrt(periods_per_year) and V[SR] by periods_per_year first (`deannualise`).

- PSR(SR*) = Φ( (SR − SR*) √(T − 1) / √(1 − γ₃ SR + (γ₄ − 1)/4 SR²) ), γ₄ the Pearson
  (non-excess) kurtosis: the probability that the true SR exceeds SR*.
- E[max SR over N trials] ≈ √V · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e))), γ the
  Euler–Mascheroni constant (for N independent trials with true SR 0).
- DSR = PSR(E[max SR]): the probability that the selected strategy's SR beats what the best of
  N skill-less trials would show by luck.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from autoopt.errors import DataError

EULER_GAMMA = 0.5772156649015329


def deannualise(sr_annual: float, sr_var_annual: float, periods_per_year: float) -> tuple[float, float]:
    """(per-period SR, per-period V[SR]) from annualised ones."""
    return sr_annual / math.sqrt(periods_per_year), sr_var_annual / periods_per_year


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """PSR: P(true per-period SR > sr_benchmark) given the observed SR over n_obs returns."""
    if n_obs < 2:
        raise DataError(f"probabilistic_sharpe_ratio: need n_obs >= 2, got {n_obs}")
    denom_sq = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if not denom_sq > 0:
        raise DataError(
            f"probabilistic_sharpe_ratio: non-positive variance term {denom_sq:.4g} "
            f"(sr={sr}, skew={skew}, kurtosis={kurtosis})"
        )
    z = (sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom_sq)
    return float(stats.norm.cdf(z))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """Expected maximum per-period SR among n_trials skill-less trials with variance sr_variance.

    One trial has nothing to be the maximum of: 0.0.
    """
    if n_trials < 1:
        raise DataError(f"expected_max_sharpe: n_trials must be >= 1, got {n_trials}")
    if sr_variance < 0:
        raise DataError(f"expected_max_sharpe: sr_variance must be >= 0, got {sr_variance}")
    if n_trials == 1:
        return 0.0
    z1 = stats.norm.ppf(1.0 - 1.0 / n_trials)
    z2 = stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sr_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def deflated_sharpe_ratio(
    sr: float,
    n_obs: int,
    n_trials: int,
    sr_variance: float,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """DSR = PSR(E[max SR]) for the best of n_trials, all per period."""
    return probabilistic_sharpe_ratio(
        sr, expected_max_sharpe(n_trials, sr_variance), n_obs, skew, kurtosis
    )


def sharpe_moments(returns: Sequence[float] | np.ndarray) -> tuple[float, int, float, float]:
    """(per-period SR with ddof=1, n_obs, skew, Pearson kurtosis) of a return series."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 4 or not np.all(np.isfinite(r)):
        raise DataError(f"sharpe_moments: need >= 4 finite returns, got {r.size}")
    if np.ptp(r) == 0:  # constant series: no risk taken, no evidence of skill
        return 0.0, int(r.size), 0.0, 3.0
    return (
        float(r.mean() / r.std(ddof=1)),
        int(r.size),
        float(stats.skew(r)),
        float(stats.kurtosis(r, fisher=False)),
    )


def deflated_sharpe_from_returns(
    returns: Sequence[float] | np.ndarray, n_trials: int, sr_variance: float
) -> float:
    """DSR of a per-period return series, selected as the best of n_trials."""
    sr, n, skew, kurt = sharpe_moments(returns)
    return deflated_sharpe_ratio(sr, n, n_trials, sr_variance, skew, kurt)


__all__ = [
    "EULER_GAMMA",
    "deannualise",
    "deflated_sharpe_from_returns",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "probabilistic_sharpe_ratio",
    "sharpe_moments",
]
