"""Feature selection under purged CV: model gain importance and permutation importance.

Why permutation importance decides: gain rewards features the trees *used*, even ones that only
fit noise; permutation importance asks how much the out-of-sample log loss worsens when one
feature's test values are shuffled, on purged walk-forward folds, so only features that help on
unseen, later data survive. Gain is kept and recorded next to it (it is what stability over time
is usually read from).

Rule: keep features whose mean permutation importance over the folds is > 0; if that leaves
fewer than ``min_features``, keep the ``min_features`` best by permutation importance (gain
breaks ties). Shuffles are seeded per (fold, feature), so the result is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoopt.errors import DataError
from autoopt.plugins.interfaces import Trainer, TrainTask, lookback_of
from autoopt.validation.metrics import log_loss


@dataclass(frozen=True)
class FeatureSelection:
    """The kept features (in dataset order) and every candidate's importances."""

    selected: tuple[str, ...]
    gain: dict[str, float]
    """Mean over folds of the share of total gain (sums to 1)."""
    permutation: dict[str, float]
    """Mean over folds of (log loss with the feature shuffled) − (log loss as is)."""

    def importances(self) -> dict[str, float]:
        """Flat ``{"gain/<f>": .., "perm/<f>": ..}`` for manifests and event metrics."""
        out = {f"gain/{k}": v for k, v in self.gain.items()}
        out |= {f"perm/{k}": v for k, v in self.permutation.items()}
        return out


def _fold_importances(
    trainer: Trainer, task: TrainTask, params: dict[str, Any], f: int, threads: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(gain share, permutation importance) of every feature on fold ``f``."""
    train, test = task.folds[f]
    names = list(task.feature_names)
    k = len(names)
    y = np.asarray(task.y)
    model = trainer.fit(task.X[train], y[train], params, names, seed=task.seed, threads=threads)
    g = np.asarray([model.importance("gain")[n] for n in names])
    gain = g / g.sum() if g.sum() > 0 else g
    X_test = np.array(task.X[test], dtype=np.float64, copy=True)
    m = X_test.shape[0]
    shuffled = []
    for j in range(k):
        rng = np.random.default_rng([task.seed, f, j])
        shuffled.append(rng.permutation(X_test[:, j]))
    if lookback_of(model) == 1:
        # rows are predicted independently: the k shuffled copies and the original go through
        # one predict call (the same numbers as k + 1 calls, without k call overheads)
        stacked = np.tile(X_test, (k + 1, 1))
        for j in range(k):
            stacked[(j + 1) * m:(j + 2) * m, j] = shuffled[j]
        proba = model.predict_proba(stacked)
        base = log_loss(y[test], proba[:m])
        perm = np.asarray([log_loss(y[test], proba[(j + 1) * m:(j + 2) * m]) - base
                           for j in range(k)])
        return gain, perm
    base = log_loss(y[test], model.predict_proba(X_test))
    perm = np.zeros(k)
    for j in range(k):
        saved = X_test[:, j].copy()
        X_test[:, j] = shuffled[j]
        perm[j] = log_loss(y[test], model.predict_proba(X_test)) - base
        X_test[:, j] = saved
    return gain, perm


def select_features(
    trainer: Trainer,
    task: TrainTask,
    *,
    params: Mapping[str, Any] | None = None,
    min_features: int = 3,
) -> FeatureSelection:
    """Rank ``task``'s features by purged-CV permutation importance and keep the useful ones.

    A trainer whose fits release the GIL and run on one thread each (``parallel_folds``) has
    its folds fitted by ``task.threads`` worker threads, one LightGBM thread per fit; the folds'
    figures are summed in fold order whatever finished first, so the result is the same."""
    names = list(task.feature_names)
    k = len(names)
    if k == 0:
        raise DataError(f"{task.symbol}: no features to select from")
    n_train_min = min(len(tr) for tr, _ in task.folds)
    p = dict(params) if params is not None else trainer.default_params(n_train_min)
    nf = len(task.folds)
    workers = min(int(task.threads), nf) if getattr(trainer, "parallel_folds", False) else 1
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers, thread_name_prefix="select") as pool:
            per_fold = list(pool.map(
                lambda f: _fold_importances(trainer, task, p, f, 1), range(nf)))
    else:
        per_fold = [_fold_importances(trainer, task, p, f, task.threads) for f in range(nf)]
    gain = np.zeros(k)
    perm = np.zeros(k)
    for g, pi in per_fold:
        gain += g
        perm += pi
    gain /= nf
    perm /= nf
    keep = [j for j in range(k) if perm[j] > 0]
    if len(keep) < min(min_features, k):
        order = sorted(range(k), key=lambda j: (-perm[j], -gain[j], j))
        keep = sorted(order[: min(min_features, k)])
    return FeatureSelection(
        selected=tuple(names[j] for j in keep),
        gain={n: float(v) for n, v in zip(names, gain, strict=True)},
        permutation={n: float(v) for n, v in zip(names, perm, strict=True)},
    )


__all__ = ["FeatureSelection", "select_features"]
