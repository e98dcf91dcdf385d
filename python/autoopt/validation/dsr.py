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

The variance V of the luck benchmark (`null_sharpe_variance`)
    V is the variance of the Sharpe *estimator* when the true SR is 0, not the spread of the
    trials' own Sharpe ratios. Why: when some hyperparameters exploit a real edge and others do
    not, the trials' spread is skill, not noise, and a benchmark scaled by it rises with the very
    edge it should detect (a strong hourly edge, PSR 0.999, was refused that way). Under the null
    the spread of SR estimates is set by the sample: for T returns, Mertens (2002) gives
    V[SR^] = (1 − γ₃ SR + (γ₄ − 1)/4 SR²)/(T − 1), and at SR = 0 the skew and kurtosis terms
    vanish, leaving 1/(T − 1) (they still enter the PSR denominator at the observed SR). Serial
    correlation widens it (Lo 2002): the variance of a mean of autocorrelated returns is the
    long-run variance, so V is multiplied by the Newey–West (Bartlett) long-run variance ratio
    1 + 2 Σₖ (1 − k/(q+1)) ρₖ with q = ⌊4 (T/100)^(2/9)⌋, floored at 1 (negative autocorrelation
    is not allowed to make the benchmark easier). Bailey & López de Prado (2014) derive
    E[max SR] for N independent trials of variance V; N here is every trial started (pruned and
    failed ones looked at the data too), an upper bound of the effective number of independent
    trials, so the benchmark errs towards refusing.

References: Lo, "The Statistics of Sharpe Ratios", FAJ 2002; Mertens, "Comments on variance of
the IID estimator in Lo (2002)", 2002; Bailey & López de Prado, "The Deflated Sharpe Ratio",
JPM 2014; Newey & West, Econometrica 1987/1994.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from autoopt.errors import DataError

EULER_GAMMA = 0.5772156649015329


def deannualise(sr_annual: float, sr_var_annual: float, periods_per_year: float) -> tuple[float, float]:
    """(per-period SR, per-period V[SR]) from annualised ones."""
    return sr_annual / math.sqrt(periods_per_year), sr_var_annual / periods_per_year


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """PSR: P(true per-period SR > sr_benchmark) given the observed SR over n_obs returns."""
    from scipy import stats  # ~1 s to import: only where a statistic needs it

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


def expected_max_sharpe(n_trials: float, sr_variance: float) -> float:
    """Expected maximum per-period SR among n_trials skill-less trials with variance sr_variance.

    One trial has nothing to be the maximum of: 0.0. N may be fractional (an effective number
    of trials, `autoopt.validation.ledger`); the benchmark is floored at 0.
    """
    from scipy import stats  # ~1 s to import: only where a statistic needs it

    if n_trials < 1:
        raise DataError(f"expected_max_sharpe: n_trials must be >= 1, got {n_trials}")
    if sr_variance < 0:
        raise DataError(f"expected_max_sharpe: sr_variance must be >= 0, got {sr_variance}")
    if n_trials == 1:
        return 0.0
    z1 = stats.norm.ppf(1.0 - 1.0 / n_trials)
    z2 = stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return max(0.0, float(math.sqrt(sr_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)))


def long_run_variance_ratio(returns: Sequence[float] | np.ndarray) -> float:
    """Newey–West (Bartlett kernel) long-run variance over the plain variance of a series,
    floored at 1: how much serial correlation widens the spread of its mean (Lo 2002)."""
    r = np.asarray(returns, dtype=np.float64)
    n = r.size
    if n < 4:
        raise DataError(f"long_run_variance_ratio: need >= 4 returns, got {n}")
    x = r - r.mean()
    denom = float(x @ x)
    if denom == 0.0:
        return 1.0
    q = min(n - 1, int(4.0 * (n / 100.0) ** (2.0 / 9.0)))
    ratio = 1.0
    for k in range(1, q + 1):
        rho = float(x[k:] @ x[:-k]) / denom
        ratio += 2.0 * (1.0 - k / (q + 1.0)) * rho
    return max(1.0, ratio)


def null_sharpe_variance(returns: Sequence[float] | np.ndarray) -> float:
    """Variance of the per-period Sharpe estimator of ``returns`` under the null (true SR = 0):
    the luck benchmark's V (see the module doc): ``long_run_variance_ratio / (T − 1)``."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 4 or not np.all(np.isfinite(r)):
        raise DataError(f"null_sharpe_variance: need >= 4 finite returns, got {r.size}")
    return long_run_variance_ratio(r) / (r.size - 1)


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
    from scipy import stats  # ~1 s to import: only where a statistic needs it

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
    "long_run_variance_ratio",
    "null_sharpe_variance",
    "probabilistic_sharpe_ratio",
    "sharpe_moments",
]
