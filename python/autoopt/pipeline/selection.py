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
from autoopt.plugins.interfaces import Trainer, TrainTask
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


def select_features(
    trainer: Trainer,
    task: TrainTask,
    *,
    params: Mapping[str, Any] | None = None,
    min_features: int = 3,
) -> FeatureSelection:
    """Rank ``task``'s features by purged-CV permutation importance and keep the useful ones."""
    names = list(task.feature_names)
    k = len(names)
    if k == 0:
        raise DataError(f"{task.symbol}: no features to select from")
    y = np.asarray(task.y)
    gain = np.zeros(k)
    perm = np.zeros(k)
    n_train_min = min(len(tr) for tr, _ in task.folds)
    p = dict(params) if params is not None else trainer.default_params(n_train_min)
    for f, (train, test) in enumerate(task.folds):
        model = trainer.fit(task.X[train], y[train], p, names, seed=task.seed, threads=task.threads)
        g = np.asarray([model.importance("gain")[n] for n in names])
        gain += g / g.sum() if g.sum() > 0 else g
        X_test = np.array(task.X[test], dtype=np.float64, copy=True)
        base = log_loss(y[test], model.predict_proba(X_test))
        for j in range(k):
            rng = np.random.default_rng([task.seed, f, j])
            saved = X_test[:, j].copy()
            X_test[:, j] = rng.permutation(saved)
            perm[j] += log_loss(y[test], model.predict_proba(X_test)) - base
            X_test[:, j] = saved
    nf = len(task.folds)
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
