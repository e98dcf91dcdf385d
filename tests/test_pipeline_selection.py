"""Feature selection under purged CV with real LightGBM: the informative features survive,
pure noise does not, and the result is deterministic."""

from __future__ import annotations

import numpy as np

from autoopt.builtins.lgbm import LightGBMTrainer
from autoopt.pipeline.selection import select_features
from autoopt.plugins.interfaces import TrainTask
from autoopt.validation.cv import PurgedWalkForward

NAMES = ("signal_a", "signal_b", "noise_1", "noise_2", "noise_3", "noise_4")


def _task(n: int = 3000, informative: bool = True) -> TrainTask:
    rng = np.random.default_rng(11)
    X = rng.normal(size=(n, len(NAMES)))
    logit = (2.0 * X[:, 0] - 1.5 * X[:, 1]) if informative else np.zeros(n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    folds = tuple(PurgedWalkForward(n_splits=3, test_size=0.15, embargo=5,
                                    min_train_size=500).split(n))
    return TrainTask(symbol="SYN", X=X, y=y, feature_names=NAMES, folds=folds,
                     forward_returns=np.zeros(n), periods_per_year=252.0, seed=5, threads=1)


def test_informative_features_are_kept_and_noise_dropped() -> None:
    sel = select_features(LightGBMTrainer(), _task(), min_features=1)
    assert {"signal_a", "signal_b"} <= set(sel.selected)
    assert len(sel.selected) <= 3
    assert min(sel.permutation["signal_a"], sel.permutation["signal_b"]) > 10 * max(
        sel.permutation[n] for n in NAMES[2:])
    # every candidate's importance is recorded, selected or not
    assert set(sel.importances()) == {f"{k}/{n}" for k in ("gain", "perm") for n in NAMES}
    assert abs(sum(sel.gain.values()) - 1.0) < 1e-9


def test_selection_is_deterministic_and_keeps_a_minimum() -> None:
    a = select_features(LightGBMTrainer(), _task(informative=False), min_features=3)
    b = select_features(LightGBMTrainer(), _task(informative=False), min_features=3)
    assert a == b
    assert len(a.selected) >= 3


class _ReadsHistory:
    """A real LightGBM model that declares a lookback, so selection predicts it one shuffled
    column at a time (a sequence model's rows cannot be stacked)."""

    lookback = 2

    def __init__(self, model) -> None:  # noqa: ANN001
        self.model = model

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.model, name)


class _HistoryTrainer(LightGBMTrainer):
    parallel_folds = False

    def fit(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return _ReadsHistory(super().fit(*args, **kwargs))


def test_folds_in_threads_and_one_stacked_predict_change_nothing() -> None:
    """Folds fitted by two threads, and the shuffled copies predicted in one call, give exactly
    the importances of one fold at a time and one shuffled column per call."""
    from dataclasses import replace

    one = select_features(LightGBMTrainer(), _task(), min_features=1)
    two = select_features(LightGBMTrainer(), replace(_task(), threads=2), min_features=1)
    column_by_column = select_features(_HistoryTrainer(), _task(), min_features=1)
    assert one == two == column_by_column
    assert one.permutation["signal_a"] > 0
