"""Probability of Backtest Overfitting by combinatorially symmetric cross-validation (CSCV;
Bailey, Borwein, López de Prado & Zhu, "The Probability of Backtest Overfitting", 2015).

Why: the DSR asks whether the chosen trial's Sharpe beats what luck gives the best of N; PBO asks
whether *choosing* by in-sample performance works at all on these trials. The T×N matrix of the
trials' out-of-sample returns (rows in time order) is cut into S contiguous blocks (S even). For
each of the C(S, S/2) ways to call half the blocks in-sample (IS) and the rest out-of-sample
(OOS): take the trial with the best IS Sharpe, find its rank ω among all trials' OOS Sharpe
ratios (ω = rank/(N+1), rank 1 = worst, ties averaged) and its logit λ = ln(ω/(1−ω)).
PBO = the share of combinations with λ ≤ 0: the IS winner did no better than the OOS median.

PBO ≈ 0.5 is what selection among interchangeable trials gives (equally good or equally
useless: the winner's OOS rank is uniform); well above 0.5 the IS winner systematically loses
out of sample, the signature of overfit selection. Also reported: the share of combinations in
which the IS winner lost money OOS (``prob_loss``).
"""

from __future__ import annotations

import itertools
import math

import msgspec
import numpy as np

from autoopt.errors import DataError


class PBOResult(msgspec.Struct, frozen=True):
    pbo: float
    prob_loss: float
    n_combinations: int
    n_trials: int
    n_partitions: int
    logits: list[float]


def _sharpes(sums: np.ndarray, sq: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-period Sharpe (ddof=1) of each row's pooled blocks; 0 where the spread is 0."""
    n = counts[:, None]
    mean = sums / n
    var = (sq - n * mean * mean) / np.maximum(n - 1, 1)
    std = np.sqrt(np.maximum(var, 0.0))
    safe = np.where(std > 1e-300, std, 1.0)
    return np.where(std > 1e-300, mean / safe, 0.0)


def probability_of_backtest_overfitting(returns: np.ndarray, n_partitions: int = 16) -> PBOResult:
    """PBO of the T×N matrix ``returns`` (column = one trial's OOS returns, rows in time order)."""
    m = np.asarray(returns, dtype=np.float64)
    if m.ndim != 2:
        raise DataError(f"PBO: returns must be a T x N matrix, got shape {m.shape}")
    t, n = m.shape
    if n < 2:
        raise DataError(f"PBO: need >= 2 trials, got {n}")
    if n_partitions < 2 or n_partitions % 2:
        raise DataError(f"PBO: n_partitions must be even and >= 2, got {n_partitions}")
    if t < 2 * n_partitions:
        raise DataError(f"PBO: {t} rows are too few for {n_partitions} partitions")
    if not np.all(np.isfinite(m)):
        raise DataError("PBO: returns hold NaN or inf")
    blocks = np.array_split(np.arange(t), n_partitions)
    sums = np.stack([m[b].sum(axis=0) for b in blocks])
    sq = np.stack([(m[b] ** 2).sum(axis=0) for b in blocks])
    counts = np.asarray([b.size for b in blocks], dtype=np.float64)
    combos = np.zeros((math.comb(n_partitions, n_partitions // 2), n_partitions), dtype=bool)
    for i, combo in enumerate(itertools.combinations(range(n_partitions), n_partitions // 2)):
        combos[i, list(combo)] = True
    ins, outs = combos.astype(np.float64), (~combos).astype(np.float64)
    sr_is = _sharpes(ins @ sums, ins @ sq, ins @ counts)
    sr_oos = _sharpes(outs @ sums, outs @ sq, outs @ counts)
    best = np.argmax(sr_is, axis=1)  # first of ties: deterministic
    chosen = sr_oos[np.arange(best.size), best][:, None]
    rank = np.sum(sr_oos < chosen, axis=1) + (np.sum(sr_oos == chosen, axis=1) + 1) / 2.0
    omega = rank / (n + 1.0)
    logits = np.log(omega / (1.0 - omega))
    losses = int(np.sum(chosen[:, 0] < 0))
    lam = logits
    return PBOResult(pbo=float(np.mean(lam <= 0.0)), prob_loss=losses / lam.size,
                     n_combinations=int(lam.size), n_trials=n, n_partitions=n_partitions,
                     logits=[float(x) for x in lam])


__all__ = ["PBOResult", "probability_of_backtest_overfitting"]
