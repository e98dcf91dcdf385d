"""The trial ledger's arithmetic: every configuration tried for a symbol, and how many
independent trials they amount to (López de Prado & Lewis, "Detection of false investment
strategies using unsupervised learning methods", 2019; López de Prado, "A data science solution
to the multiple-testing crisis in financial research", 2019).

Why: the Deflated Sharpe test needs N, the number of trials the winner was selected from. A
study's own trials are not all of them: other models, feature-selection variants, risk searches
and every past retrain of the symbol looked at (mostly) the same history. But trials are
correlated (neighbouring hyperparameters trade alike), so counting them raw over-deflates. The
ledger keeps each trial's out-of-sample returns as a compact *signature* (sums per UTC day,
`signature`), so trials of different runs line up on calendar days; `effective_trials` clusters
the signatures and calls each cluster one independent trial.

Clustering (after ONC): correlation ρ of each pair over the days both cover (pairs sharing fewer
than `MIN_OVERLAP` days count as uncorrelated: the cautious side), distance √(½(1−ρ)),
average-linkage hierarchy, cut at every k in 2..K; the k whose silhouette scores have the
highest mean/std (ONC's quality) wins. When every pair is correlated at ρ ≥ `ONE_CLUSTER_RHO`
the trials are one cluster. Entries without a series (pruned or failed trials) looked at the
data too: N_eff = K · (all entries / entries with a series), never below 1 nor above raw N.
At most `MAX_SERIES` (the most recent) series are clustered; older ones count the same way.

Reported with N: the variance of the clusters' Sharpe ratios (each cluster's equal-weight
return series), the quantity López de Prado's multiple-testing rule uses. The DSR keeps the null
variance of the Sharpe estimator as its V (see `autoopt.validation.dsr` for why); the cluster
variance is shown next to it so a reader can see both.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np

from autoopt.errors import DataError

DAY_NS = 86_400 * 1_000_000_000
MAX_BUCKETS = 512
"""A signature keeps the most recent this many days (bounded event size)."""
MIN_OVERLAP = 8
ONE_CLUSTER_RHO = 0.5
MAX_CLUSTERS = 24
MAX_SERIES = 1024
"""At most this many (the most recent) series are clustered; the rest count in proportion, as
entries without a series do (memory and time grow with the square of the series clustered)."""


class Signature(msgspec.Struct, frozen=True):
    """A trial's out-of-sample net returns summed per UTC day: ``days[i]`` (days since the
    epoch) holds ``returns[i]``."""

    days: list[int]
    returns: list[float]


class EffectiveTrials(msgspec.Struct, frozen=True):
    n_raw: int
    n_with_series: int
    n_clusters: int
    n_effective: float
    clusters_sr_variance: float
    labels: list[int]


def signature(ts_ns: np.ndarray, returns: np.ndarray, bucket_ns: int = DAY_NS) -> Signature:
    """Sum ``returns`` (aligned with bar times ``ts_ns``) per UTC day, most recent MAX_BUCKETS."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    r = np.asarray(returns, dtype=np.float64)
    if ts.shape != r.shape:
        raise DataError(f"signature: {ts.size} timestamps for {r.size} returns")
    if r.size == 0:
        return Signature([], [])
    day = ts // bucket_ns
    uniq, inv = np.unique(day, return_inverse=True)
    sums = np.bincount(inv, weights=np.nan_to_num(r), minlength=uniq.size)
    uniq, sums = uniq[-MAX_BUCKETS:], sums[-MAX_BUCKETS:]
    return Signature([int(d) for d in uniq], [float(x) for x in sums])


def _correlations(sigs: Sequence[Signature]) -> np.ndarray:
    """Pairwise-complete Pearson correlations (vectorised: the ledger grows with every run)."""
    days = sorted({d for s in sigs for d in s.days})
    col = {d: i for i, d in enumerate(days)}
    n = len(sigs)
    x = np.zeros((len(days), n))
    h = np.zeros((len(days), n))
    for j, s in enumerate(sigs):
        idx = [col[d] for d in s.days]
        x[idx, j] = s.returns
        h[idx, j] = 1.0
    cnt = h.T @ h  # days both cover
    sx = x.T @ h  # [a, b]: sum of a over the days b covers too
    sxx = (x * x).T @ h
    sxy = x.T @ x
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.maximum(cnt, 1.0)
        cov = sxy / m - (sx / m) * (sx.T / m)
        va = sxx / m - (sx / m) ** 2
        rho = cov / np.sqrt(va * va.T)
    ok = (cnt >= MIN_OVERLAP) & np.isfinite(rho) & (va > 0) & (va.T > 0)
    rho = np.where(ok, np.clip(rho, -1.0, 1.0), 0.0)
    np.fill_diagonal(rho, 1.0)
    return rho


def _silhouette(dist: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Silhouette of every point (0 for singletons), vectorised over clusters."""
    _, lab = np.unique(labels, return_inverse=True)
    k = int(lab.max()) + 1
    onehot = np.eye(k)[lab]
    sizes = onehot.sum(axis=0)
    totals = dist @ onehot  # [i, c]: summed distance of i to cluster c
    own = sizes[lab]
    a = totals[np.arange(lab.size), lab] / np.maximum(own - 1, 1)
    other = totals / sizes
    other[np.arange(lab.size), lab] = np.inf
    b = other.min(axis=1)
    den = np.maximum(a, b)
    s = np.where(den > 0, (b - a) / np.where(den > 0, den, 1.0), 0.0)
    return np.where(own > 1, s, 0.0)


def cluster_trials(rho: np.ndarray) -> np.ndarray:
    """Cluster labels (0..K−1) of trials from their correlation matrix (see module doc)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = rho.shape[0]
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    off = rho[~np.eye(n, dtype=bool)]
    if np.all(off >= ONE_CLUSTER_RHO):
        return np.zeros(n, dtype=np.int64)
    if n == 2:
        return np.arange(2, dtype=np.int64)
    dist = np.sqrt(np.clip(0.5 * (1.0 - rho), 0.0, 1.0))
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=False), method="average")
    best, best_q = None, -np.inf
    for k in range(2, min(n - 1, MAX_CLUSTERS) + 1):
        labels = fcluster(tree, k, criterion="maxclust")
        if np.unique(labels).size < 2:
            continue
        s = _silhouette(dist, labels)
        q = s.mean() / s.std() if s.std() > 0 else (np.inf if s.mean() > 0 else -np.inf)
        if q > best_q:
            best, best_q = labels, q
    if best is None:  # every cut merges everything: n independent trials is the cautious answer
        return np.arange(n, dtype=np.int64)
    _, out = np.unique(best, return_inverse=True)
    return out.astype(np.int64)


def effective_trials(n_raw: int, sigs: Sequence[Signature]) -> EffectiveTrials:
    """Effective number of independent trials among ``n_raw`` ledger entries, ``sigs`` being
    the signatures of those that have an out-of-sample series."""
    if n_raw < 1:
        raise DataError(f"effective_trials: n_raw must be >= 1, got {n_raw}")
    usable = [s for s in sigs if len(s.days) >= 2][-MAX_SERIES:]
    if not usable:
        return EffectiveTrials(n_raw, 0, n_raw, float(n_raw), float("nan"), [])
    rho = _correlations(usable)
    labels = cluster_trials(rho)
    k = int(labels.max()) + 1
    n_eff = min(float(n_raw), max(1.0, k * n_raw / len(usable)))
    sr = []
    for c in range(k):
        members = [usable[i] for i in np.flatnonzero(labels == c)]
        days = sorted({d for s in members for d in s.days})
        col = {d: i for i, d in enumerate(days)}
        acc = np.zeros(len(days))
        cnt = np.zeros(len(days))
        for s in members:
            idx = [col[d] for d in s.days]
            acc[idx] += s.returns
            cnt[idx] += 1
        series = acc / np.maximum(cnt, 1)
        sd = series.std(ddof=1) if series.size > 1 else 0.0
        sr.append(float(series.mean() / sd) if sd > 0 else 0.0)
    var = float(np.var(sr, ddof=1)) if len(sr) > 1 else 0.0
    return EffectiveTrials(n_raw, len(usable), k, n_eff, var, [int(x) for x in labels])


__all__ = ["DAY_NS", "EffectiveTrials", "Signature", "cluster_trials", "effective_trials",
           "signature"]
