"""Fixed-sample tests comparing a challenger's per-trade returns with the champion's.

Why: an A/B verdict on trading returns needs more than a difference of means. Returns are
heavy-tailed (Mann–Whitney does not care), the quantity traders decide on is the Sharpe ratio
(bootstrap CI, Jobson–Korkie–Memmel), and a broken split invalidates everything (SRM check).

Convention: every two-sample function takes ``a`` (the champion / control) then ``b`` (the
challenger), and every difference is ``b - a``.

Formulas
    Welch: ``t = (mean_b - mean_a) / se``, ``se² = s_a²/n_a + s_b²/n_b`` (``ddof=1``), with
    Welch–Satterthwaite ``df = se⁴ / ((s_a²/n_a)²/(n_a-1) + (s_b²/n_b)²/(n_b-1))``; two-sided p
    from Student's t (as ``scipy.stats.ttest_ind(b, a, equal_var=False)``).

    Mann–Whitney U: ``U_b = R_b - n_b(n_b+1)/2`` from mid-ranks of the pooled sample; normal
    approximation with tie correction and continuity correction (as ``scipy.stats.mannwhitneyu(b,
    a, method="asymptotic")``). ``U_b / (n_a n_b)`` estimates ``P(B > A) + P(B = A)/2``.

    Jobson–Korkie with Memmel's (2003) correction, for two *paired* return series (same periods):
    ``z = (SR_b - SR_a) / sqrt(θ)``,
    ``θ = [2 - 2ρ + ½(SR_a² + SR_b² - 2 SR_a SR_b ρ²)] / T``, where ``SR = mean / std``
    (``ddof=1``), ``ρ`` the correlation of the two series and ``T`` their length. Under H0
    (equal Sharpe ratios) and i.i.d. normal returns, ``z`` is asymptotically N(0, 1).

    SRM: Pearson's chi-square goodness of fit of the observed counts per variant against
    ``total * weight``, ``k - 1`` degrees of freedom (as ``scipy.stats.chisquare``). GrowthBook
    flags a mismatch at ``p < 0.001``; so do we by default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import msgspec
import numpy as np

from autoopt.errors import DataError

ArrayLike = np.ndarray | Sequence[float]

SRM_THRESHOLD = 0.001


def _sample(values: ArrayLike, name: str, min_n: int = 2) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size < min_n:
        raise DataError(f"{name} needs at least {min_n} values, got {arr.size}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise DataError(f"{name}[{bad}] is {arr[bad]}: returns must be finite")
    return arr


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise DataError(f"alpha must be in (0, 1), got {alpha}")


# ------------------------------------------------------------------------------------ Welch


class WelchResult(msgspec.Struct, frozen=True):
    """Welch's unequal-variance t-test of ``mean_b - mean_a``."""

    diff: float
    se: float
    t: float
    df: float
    p_value: float
    ci_low: float
    ci_high: float
    n_a: int
    n_b: int


def welch_from_moments(
    mean_a: float,
    var_a: float,
    n_a: int,
    mean_b: float,
    var_b: float,
    n_b: int,
    *,
    alpha: float = 0.05,
) -> WelchResult:
    """Welch's test from running moments (sample variances with ``ddof=1``), so a tracker that
    keeps only count/mean/variance can run it without the raw returns."""
    from scipy import stats as sps  # scipy costs ~0.6 s: imported where a test statistic needs it

    _check_alpha(alpha)
    if n_a < 2 or n_b < 2:
        raise DataError(f"Welch's test needs at least 2 trades per variant, got {n_a} and {n_b}")
    if var_a < 0 or var_b < 0 or not (math.isfinite(var_a) and math.isfinite(var_b)):
        raise DataError(f"variances must be finite and >= 0, got {var_a} and {var_b}")
    va, vb = var_a / n_a, var_b / n_b
    se2 = va + vb
    if se2 <= 0.0:
        raise DataError("Welch's test is undefined: both samples are constant (zero variance)")
    se = math.sqrt(se2)
    diff = mean_b - mean_a
    t = diff / se
    df = se2 * se2 / (va * va / (n_a - 1) + vb * vb / (n_b - 1))
    p = float(2.0 * sps.t.sf(abs(t), df))
    q = float(sps.t.ppf(1.0 - alpha / 2.0, df))
    return WelchResult(
        diff=diff,
        se=se,
        t=t,
        df=df,
        p_value=min(p, 1.0),
        ci_low=diff - q * se,
        ci_high=diff + q * se,
        n_a=int(n_a),
        n_b=int(n_b),
    )


def welch_t_test(a: ArrayLike, b: ArrayLike, *, alpha: float = 0.05) -> WelchResult:
    """Welch's t-test of ``mean(b) - mean(a)`` on per-trade returns."""
    xa, xb = _sample(a, "a"), _sample(b, "b")
    return welch_from_moments(
        float(xa.mean()),
        float(xa.var(ddof=1)),
        xa.size,
        float(xb.mean()),
        float(xb.var(ddof=1)),
        xb.size,
        alpha=alpha,
    )


# ------------------------------------------------------------------------------ Mann–Whitney


class MannWhitneyResult(msgspec.Struct, frozen=True):
    """Mann–Whitney U of ``b`` against ``a`` (normal approximation, tie and continuity corrected)."""

    u: float
    z: float
    p_value: float
    prob_superiority: float
    n_a: int
    n_b: int


def mann_whitney_u(a: ArrayLike, b: ArrayLike) -> MannWhitneyResult:
    """Two-sided Mann–Whitney U test; ``u`` is ``U_b`` and ``prob_superiority = U_b/(n_a n_b)``."""
    from scipy import special
    from scipy import stats as sps  # scipy costs ~0.6 s: imported where a test statistic needs it

    xa, xb = _sample(a, "a", 1), _sample(b, "b", 1)
    na, nb = xa.size, xb.size
    n = na + nb
    ranks = sps.rankdata(np.concatenate((xb, xa)))
    u_b = float(ranks[:nb].sum()) - nb * (nb + 1) / 2.0
    u_a = na * nb - u_b
    _, counts = np.unique(np.concatenate((xa, xb)), return_counts=True)
    ties = float(np.sum(counts.astype(np.float64) ** 3 - counts))
    sigma2 = na * nb / 12.0 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if sigma2 <= 0.0:
        raise DataError("Mann–Whitney U is undefined: every return in both samples is equal")
    mu = na * nb / 2.0
    big = max(u_a, u_b)
    z = (big - mu - 0.5) / math.sqrt(sigma2)
    p = float(min(1.0, 2.0 * special.ndtr(-z)))
    signed_z = (u_b - mu) / math.sqrt(sigma2)
    return MannWhitneyResult(
        u=u_b,
        z=signed_z,
        p_value=p,
        prob_superiority=u_b / (na * nb),
        n_a=na,
        n_b=nb,
    )


# --------------------------------------------------------------------------------- Sharpe


def sharpe_ratio(returns: ArrayLike) -> float:
    """Per-trade Sharpe ratio ``mean / std`` (``ddof=1``, no risk-free rate, not annualised);
    0.0 for a constant series."""
    x = _sample(returns, "returns")
    sd = float(x.std(ddof=1))
    return float(x.mean()) / sd if sd > 0 else 0.0


class SharpeDiffCI(msgspec.Struct, frozen=True):
    """Percentile bootstrap interval of ``SR_b - SR_a`` (each arm resampled on its own, or the
    paired rows together when ``paired``; in circular blocks of ``block`` rows)."""

    diff: float
    ci_low: float
    ci_high: float
    level: float
    n_boot: int
    seed: int
    degenerate: int  # resamples where an arm was constant (Sharpe undefined), left out
    paired: bool = False
    block: int = 1


def _boot_indices(n: int, count: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` resamples of ``n`` row indices, each made of circular blocks of ``block``
    consecutive rows with uniform random starts (Politis & Romano's circular block bootstrap);
    ``block=1`` is the i.i.d. bootstrap, with exactly the draws of ``rng.integers(0, n, (count,
    n))``. Blocks keep the serial dependence of returns inside a resample."""
    n_blocks = -(-n // block)
    starts = rng.integers(0, n, size=(count, n_blocks))
    rows = (starts[:, :, None] + np.arange(block)) % n
    return rows.reshape(count, n_blocks * block)[:, :n]


def _boot_sharpes(
    xs: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator, cells: int, block: int = 1
) -> list[np.ndarray]:
    """Sharpe of ``n_boot`` resamples of each series in ``xs`` (equal lengths), the same rows of
    every series in a resample (paired), in chunks of at most ``cells`` drawn values."""
    n = xs[0].size
    outs = [np.empty(n_boot) for _ in xs]
    step = max(1, cells // (n * len(xs)))
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        idx = _boot_indices(n, stop - start, block, rng)
        for x, out in zip(xs, outs, strict=True):
            draws = x[idx]
            mean = draws.mean(axis=1)
            sd = draws.std(axis=1, ddof=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[start:stop] = np.where(sd > 0, mean / sd, np.nan)
    return outs


def bootstrap_sharpe_diff(
    a: ArrayLike,
    b: ArrayLike,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    max_cells: int = 4_000_000,
    paired: bool = False,
    block: int = 1,
) -> SharpeDiffCI:
    """Percentile bootstrap CI of the per-trade Sharpe difference ``SR(b) - SR(a)``.

    By default the arms are different trades, so each is resampled on its own. ``paired=True``
    is for two series over the same periods (e.g. two policies on the same bars): a resample
    takes the same rows of both, so their correlation is kept. ``block > 1`` draws circular
    blocks of that many consecutive rows, for serially dependent returns (per-bar strategy
    returns are). The draws are vectorised in chunks of at most ``max_cells`` values (bounded
    memory). Deterministic given ``seed``.
    """
    xa, xb = _sample(a, "a"), _sample(b, "b")
    if n_boot < 100:
        raise DataError(f"n_boot must be >= 100 for a usable interval, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise DataError(f"level must be in (0, 1), got {level}")
    if paired and xa.size != xb.size:
        raise DataError(
            f"a paired bootstrap needs series of equal length, got {xa.size} and {xb.size}"
        )
    if not 1 <= block <= min(xa.size, xb.size):
        raise DataError(
            f"block must be between 1 and the shorter series' length "
            f"{min(xa.size, xb.size)}, got {block}"
        )
    rng = np.random.default_rng(seed)
    if paired:
        boot_a, boot_b = _boot_sharpes((xa, xb), n_boot, rng, max_cells, block)
    else:
        (boot_b,) = _boot_sharpes((xb,), n_boot, rng, max_cells, block)
        (boot_a,) = _boot_sharpes((xa,), n_boot, rng, max_cells, block)
    diffs = boot_b - boot_a
    ok = diffs[np.isfinite(diffs)]
    if ok.size < n_boot // 2:
        raise DataError(
            f"bootstrap of the Sharpe difference: {n_boot - ok.size} of {n_boot} resamples had a "
            "constant arm; the samples are too small or too discrete"
        )
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(ok, [tail, 1.0 - tail])
    return SharpeDiffCI(
        diff=sharpe_ratio(xb) - sharpe_ratio(xa),
        ci_low=float(lo),
        ci_high=float(hi),
        level=level,
        n_boot=n_boot,
        seed=seed,
        degenerate=int(n_boot - ok.size),
        paired=paired,
        block=block,
    )


# ------------------------------------------------------------------ Jobson–Korkie–Memmel


class JobsonKorkieResult(msgspec.Struct, frozen=True):
    """Jobson–Korkie test (Memmel's correction) of ``SR_b - SR_a`` on paired series."""

    sharpe_a: float
    sharpe_b: float
    diff: float
    rho: float
    se: float
    z: float
    p_value: float
    n: int


def jk_memmel_variance(
    sharpe_a: np.ndarray | float,
    sharpe_b: np.ndarray | float,
    rho: np.ndarray | float,
    n: np.ndarray | int,
) -> np.ndarray | float:
    """Memmel's asymptotic variance of ``SR_b - SR_a``:
    ``[2 - 2ρ + ½(SR_a² + SR_b² - 2 SR_a SR_b ρ²)] / n``. Broadcasts over arrays."""
    sa, sb, r = np.asarray(sharpe_a), np.asarray(sharpe_b), np.asarray(rho)
    out = (2.0 - 2.0 * r + 0.5 * (sa * sa + sb * sb - 2.0 * sa * sb * r * r)) / np.asarray(n)
    return float(out) if out.ndim == 0 else out


def jobson_korkie_from_moments(
    sharpe_a: float, sharpe_b: float, rho: float, n: int
) -> JobsonKorkieResult:
    """The test from the two Sharpe ratios, their returns' correlation and the series length."""
    from scipy import special  # scipy costs ~0.6 s: imported where a test statistic needs it

    if n < 3:
        raise DataError(f"Jobson–Korkie needs at least 3 paired periods, got {n}")
    if not -1.0 <= rho <= 1.0:
        raise DataError(f"rho must be a correlation in [-1, 1], got {rho}")
    var = float(jk_memmel_variance(sharpe_a, sharpe_b, rho, n))
    if var <= 0.0:
        raise DataError(
            "Jobson–Korkie variance is zero: the two series are perfectly correlated with equal "
            "Sharpe ratios"
        )
    se = math.sqrt(var)
    z = (sharpe_b - sharpe_a) / se
    return JobsonKorkieResult(
        sharpe_a=sharpe_a,
        sharpe_b=sharpe_b,
        diff=sharpe_b - sharpe_a,
        rho=rho,
        se=se,
        z=z,
        p_value=float(2.0 * special.ndtr(-abs(z))),
        n=int(n),
    )


def jobson_korkie_memmel(a: ArrayLike, b: ArrayLike) -> JobsonKorkieResult:
    """Jobson–Korkie–Memmel test on two return series observed over the same periods (e.g. the
    champion live and the challenger in shadow mode, per day)."""
    xa, xb = _sample(a, "a", 3), _sample(b, "b", 3)
    if xa.size != xb.size:
        raise DataError(
            f"Jobson–Korkie needs paired series of equal length, got {xa.size} and {xb.size}"
        )
    sda, sdb = float(xa.std(ddof=1)), float(xb.std(ddof=1))
    if sda == 0.0 or sdb == 0.0:
        raise DataError("Jobson–Korkie is undefined for a constant return series")
    rho = float(np.corrcoef(xa, xb)[0, 1])
    rho = min(1.0, max(-1.0, rho))
    return jobson_korkie_from_moments(float(xa.mean()) / sda, float(xb.mean()) / sdb, rho, xa.size)


# -------------------------------------------------------------------------------------- SRM


class SRMResult(msgspec.Struct, frozen=True):
    """Sample-ratio-mismatch check: ``mismatch`` when ``p_value < threshold``."""

    chi2: float
    df: int
    p_value: float
    mismatch: bool
    threshold: float
    observed: dict[str, int]
    expected: dict[str, float]


def sample_ratio_mismatch(
    counts: Mapping[str, int],
    weights: Mapping[str, float],
    *,
    threshold: float = SRM_THRESHOLD,
) -> SRMResult:
    """Chi-square goodness of fit of assignment ``counts`` per variant against the configured
    ``weights`` (normalised to sum 1). A variant missing from ``counts`` counts 0."""
    from scipy import special  # scipy costs ~0.6 s: imported where a test statistic needs it

    if len(weights) < 2:
        raise DataError(f"SRM needs at least 2 variants, got {sorted(weights)}")
    unknown = sorted(set(counts) - set(weights))
    if unknown:
        raise DataError(f"SRM: counts name variants without a weight: {unknown}")
    names = list(weights)
    w = np.array([weights[k] for k in names], dtype=np.float64)
    if not np.isfinite(w).all() or (w <= 0).any():
        raise DataError(f"SRM: weights must be finite and > 0, got {dict(weights)}")
    obs = np.array([counts.get(k, 0) for k in names], dtype=np.float64)
    if (obs < 0).any():
        raise DataError(f"SRM: counts must be >= 0, got {dict(counts)}")
    total = obs.sum()
    if total <= 0:
        raise DataError("SRM: no assignments to check")
    exp = total * w / w.sum()
    chi2 = float(np.sum((obs - exp) ** 2 / exp))
    df = len(names) - 1
    p = float(special.chdtrc(df, chi2))
    return SRMResult(
        chi2=chi2,
        df=df,
        p_value=p,
        mismatch=p < threshold,
        threshold=threshold,
        observed={k: int(v) for k, v in zip(names, obs, strict=True)},
        expected={k: float(v) for k, v in zip(names, exp, strict=True)},
    )


__all__ = [
    "SRM_THRESHOLD",
    "JobsonKorkieResult",
    "MannWhitneyResult",
    "SRMResult",
    "SharpeDiffCI",
    "WelchResult",
    "bootstrap_sharpe_diff",
    "jk_memmel_variance",
    "jobson_korkie_from_moments",
    "jobson_korkie_memmel",
    "mann_whitney_u",
    "sample_ratio_mismatch",
    "sharpe_ratio",
    "welch_from_moments",
    "welch_t_test",
]
