"""PSI and KS thresholds calibrated by block bootstrap of the reference window.

Why: fixed thresholds (PSI 0.2, KS p < 0.001) assume the live window's rows are independent.
Features built from prices are strongly autocorrelated: an AR(1) feature with φ = 0.9 has an
effective sample of about m·(1−φ)/(1+φ) rows in a window of m, so a *stationary* feature
wanders far from its long-run distribution in every short window and the i.i.d. tests fire on
most of them. The null distribution of "a live window of m consecutive rows from the same
process as the reference" is what the thresholds must come from.

Method (moving-block bootstrap, Künsch 1989): the reference column is cut into overlapping
blocks of length L; a pseudo-window is m rows made of ⌈m/L⌉ blocks drawn at random positions,
and a pseudo-reference is as many rows as the reference, drawn the same way and independently
(the reference is itself one autocorrelated sample: comparing pseudo-windows with the very
reference they were drawn from understates the null spread, measured 9-13% false alarms at a
nominal 5%). PSI and KS of each pseudo-window against its pseudo-reference are recorded for
``samples`` pairs;
the thresholds are their (1 − α) quantiles, α = ``false_alarm_rate`` split evenly between the
two tests and across the columns tested together (Bonferroni), so one evaluation of a stationary
feature set raises a false alarm with probability at most about ``false_alarm_rate``.

Block length: L = the first lag at which the reference's autocorrelation falls below 0.05
(ρ_k < 0.05: the dependence the window carries), at least 1, at most m. With L ≥ m the
pseudo-window is one contiguous stretch of the reference: the exact structure of a live window.

Deterministic: the generator is seeded from the release id and column name.
"""

from __future__ import annotations

import hashlib

import numpy as np

from autoopt.errors import DataError

RHO_CUTOFF = 0.05
BLOCK_FACTOR = 5


def block_length(x: np.ndarray, m: int) -> int:
    """First lag with autocorrelation < `RHO_CUTOFF`, in [1, m]."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean()
    denom = float(x @ x)
    if denom == 0.0 or x.size < 4:
        return 1
    n = x.size
    nfft = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(x, nfft)
    acf = np.fft.irfft(f * np.conj(f), nfft)[:n] / denom
    below = np.flatnonzero(acf[1:] < RHO_CUTOFF)
    lag = int(below[0]) + 1 if below.size else n
    return int(max(1, min(lag, m)))


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "little")


def calibrate(
    reference: np.ndarray, m: int, *, alpha: float, samples: int = 200, bins: int = 10,
    seed_key: str = "",
) -> tuple[float, float, int]:
    """(PSI threshold, KS statistic threshold, block length) for windows of ``m`` rows: each the
    (1 − ``alpha``) quantile of the statistic over ``samples`` block-bootstrap pseudo-windows."""
    from autoopt import drift

    ref = np.ascontiguousarray(reference, dtype=np.float64)
    ref = ref[np.isfinite(ref)]
    if ref.size < 4 or m < 2:
        raise DataError(f"drift calibration: need >= 4 reference rows and m >= 2, got "
                        f"{ref.size} and {m}")
    if not 0.0 < alpha < 1.0:
        raise DataError(f"drift calibration: alpha must be in (0, 1), got {alpha}")
    L = min(m, BLOCK_FACTOR * block_length(ref, m))
    L = min(L, ref.size)
    rng = np.random.default_rng(_seed(seed_key, str(m), str(ref.size)))
    starts_max = ref.size - L + 1
    psis = np.empty(samples)
    kss = np.empty(samples)
    offsets = np.arange(L)

    def draw(size: int) -> np.ndarray:
        starts = rng.integers(0, starts_max, -(-size // L))
        return np.ascontiguousarray(ref[(starts[:, None] + offsets[None, :]).ravel()[:size]])

    for b in range(samples):
        pseudo_ref, window = draw(ref.size), draw(m)
        psis[b] = drift.psi(pseudo_ref, window, bins)
        kss[b] = drift.ks_2samp(pseudo_ref, window).statistic
    q = 1.0 - alpha
    return float(np.quantile(psis, q)), float(np.quantile(kss, q)), L


__all__ = ["block_length", "calibrate"]
