"""Always-valid sequential test of a difference in means (normal-mixture SPRT).

Why: a live experiment is watched continuously. A fixed-horizon test checked after every batch
of trades finds a "significant" difference far more often than its alpha when there is none;
an always-valid p-value may be looked at as often as one likes.

Method (GrowthBook's sequential testing; Johari et al. 2017 mSPRT, in the asymptotic form of
Waudby-Smith et al. 2023, arXiv:2103.06476 eq. 155 and 161)
    With ``d = mean_b - mean_a``, ``se² = var_a/n_a + var_b/n_b`` and ``N = n_a + n_b``, the
    normal-mixture likelihood ratio of H0 ``d = 0`` with mixing distribution N(0, τ²) on the
    effect, ``τ² = ρ² · se² · N``, is

        Λ = exp(ρ² N d² / (2 se² (N ρ² + 1))) / sqrt(N ρ² + 1)

    a nonnegative (asymptotic) martingale under H0, so ``P(sup Λ ≥ 1/α) ≤ α`` (Ville). The
    always-valid p-value is ``min(1, 1/Λ)`` (its running minimum over looks stays valid), and the
    confidence sequence is ``d ± se·sqrt(N)·sqrt(2(Nρ²+1)/(N²ρ²) · log(sqrt(Nρ²+1)/α))``.

    The mixing scale ρ is tuned as GrowthBook does: it minimises the interval's width at a
    chosen total sample size ``N*`` (the "sequential tuning parameter", default 5000),
    ``ρ² = (-2 log α + log(-2 log α + 1)) / N*``. Choose N* near the sample you expect to decide
    at: a smaller N* detects large effects sooner, a larger one small effects.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np

from autoopt.errors import DataError

DEFAULT_TUNING = 5000.0


def sequential_rho(alpha: float, tuning: float = DEFAULT_TUNING) -> float:
    """GrowthBook's mixing scale ρ for two-sided level ``alpha`` optimised at ``tuning`` total
    observations."""
    if not 0.0 < alpha < 1.0:
        raise DataError(f"alpha must be in (0, 1), got {alpha}")
    if tuning <= 0:
        raise DataError(f"sequential tuning parameter must be > 0, got {tuning}")
    la = -2.0 * math.log(alpha)
    return math.sqrt((la + math.log(la + 1.0)) / tuning)


def msprt_arrays(
    diff: np.ndarray,
    se: np.ndarray,
    n_total: np.ndarray,
    *,
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised core: (always-valid p-value, confidence-sequence half-width) for arrays of
    differences, their standard errors and total sample sizes (any matching shapes)."""
    rho2 = sequential_rho(alpha, tuning) ** 2
    d, s, n = np.asarray(diff, float), np.asarray(se, float), np.asarray(n_total, float)
    tr = n * rho2 + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        st2 = d * d / (s * s)  # (d / se)², i.e. N d² / (se² N)
        log_lambda = rho2 * n * st2 / (2.0 * tr) - 0.5 * np.log(tr)
        p = np.minimum(1.0, np.exp(-log_lambda))
        half = s * np.sqrt(n) * np.sqrt(2.0 * tr * np.log(np.sqrt(tr) / alpha) / (n * n * rho2))
    bad = ~(s > 0) | ~(n > 0)
    p = np.where(bad, 1.0, p)
    half = np.where(bad, np.inf, half)
    return p, half


class SequentialResult(msgspec.Struct, frozen=True):
    """One look at the experiment. ``p_value`` is the running minimum over looks so far
    (``p_now`` this look's alone); ``ci_*`` the running intersection of the confidence
    sequence; ``significant`` once ``p_value < alpha``."""

    diff: float
    se: float
    n_a: int
    n_b: int
    p_now: float
    p_value: float
    ci_low: float
    ci_high: float
    alpha: float
    tuning: float
    significant: bool


def msprt(
    mean_a: float,
    var_a: float,
    n_a: int,
    mean_b: float,
    var_b: float,
    n_b: int,
    *,
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
) -> SequentialResult:
    """A single look from running moments (``ddof=1`` variances); see `SequentialMonitor` to
    carry the running minimum across looks."""
    return SequentialMonitor(alpha=alpha, tuning=tuning).update(
        mean_a, var_a, n_a, mean_b, var_b, n_b
    )


class SequentialMonitor:
    """Looks at one experiment's two arms over time, keeping the always-valid p-value's running
    minimum and the intersected confidence sequence. Rebuildable: feed the same looks again."""

    def __init__(self, *, alpha: float = 0.05, tuning: float = DEFAULT_TUNING) -> None:
        sequential_rho(alpha, tuning)  # validates
        self.alpha = alpha
        self.tuning = tuning
        self.p_value = 1.0
        self.ci_low = -math.inf
        self.ci_high = math.inf
        self.looks = 0

    def update(
        self,
        mean_a: float,
        var_a: float,
        n_a: int,
        mean_b: float,
        var_b: float,
        n_b: int,
    ) -> SequentialResult:
        """Take one look at the arms' current moments."""
        if n_a < 2 or n_b < 2:
            raise DataError(f"a sequential look needs at least 2 trades per arm, got {n_a}, {n_b}")
        if var_a < 0 or var_b < 0 or not (math.isfinite(var_a) and math.isfinite(var_b)):
            raise DataError(f"variances must be finite and >= 0, got {var_a} and {var_b}")
        diff = mean_b - mean_a
        se = math.sqrt(var_a / n_a + var_b / n_b)
        p_arr, half_arr = msprt_arrays(
            np.array(diff), np.array(se), np.array(n_a + n_b), alpha=self.alpha, tuning=self.tuning
        )
        p_now, half = float(p_arr), float(half_arr)
        self.looks += 1
        self.p_value = min(self.p_value, p_now)
        self.ci_low = max(self.ci_low, diff - half)
        self.ci_high = min(self.ci_high, diff + half)
        return SequentialResult(
            diff=diff,
            se=se,
            n_a=int(n_a),
            n_b=int(n_b),
            p_now=p_now,
            p_value=self.p_value,
            ci_low=self.ci_low,
            ci_high=self.ci_high,
            alpha=self.alpha,
            tuning=self.tuning,
            significant=self.p_value < self.alpha,
        )


__all__ = [
    "DEFAULT_TUNING",
    "SequentialMonitor",
    "SequentialResult",
    "msprt",
    "msprt_arrays",
    "sequential_rho",
]
