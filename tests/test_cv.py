"""Purged walk-forward CV: fold boundaries checked against folds worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from autoopt.errors import ConfigError
from autoopt.labels import drop_unlabeled, triple_barrier_labels
from autoopt.validation.cv import Fold, PurgedWalkForward


def _folds(cv: PurgedWalkForward, n: int, t1=None) -> list[tuple[list[int], list[int]]]:
    return [(tr.tolist(), te.tolist()) for tr, te in cv.split(n, t1)]


def _r(a: int, b: int) -> list[int]:
    return list(range(a, b))


def test_embargo_without_t1_hand_folds() -> None:
    # n=20, 3 test blocks of 4 → tests start at 20 - 12 = 8, 12, 16; embargo 2 removes the
    # two samples before each test block.
    cv = PurgedWalkForward(n_splits=3, test_size=4, embargo=2)
    assert _folds(cv, 20) == [
        (_r(0, 6), _r(8, 12)),
        (_r(0, 10), _r(12, 16)),
        (_r(0, 14), _r(16, 20)),
    ]


def test_purge_with_uneven_label_spans_hand_folds() -> None:
    # horizon-1 labels except sample 3 (looks to 9) and sample 9 (looks to 13)
    t1 = np.arange(20) + 1
    t1[3], t1[9] = 9, 13
    cv = PurgedWalkForward(n_splits=3, test_size=4, embargo=0)
    assert _folds(cv, 20, t1) == [
        ([0, 1, 2, 4, 5, 6], _r(8, 12)),  # 7 (t1=8) and 3 (t1=9) reach test [8, 11]
        ([*_r(0, 9), 10], _r(12, 16)),  # 11 (t1=12) and 9 (t1=13) reach test [12, 15]
        (_r(0, 15), _r(16, 20)),  # 15 (t1=16)
    ]


def test_rolling_window_hand_folds() -> None:
    cv = PurgedWalkForward(n_splits=3, test_size=4, embargo=1, min_train_size=4, expanding=False)
    assert _folds(cv, 20) == [
        ([3, 4, 5, 6], _r(8, 12)),
        ([7, 8, 9, 10], _r(12, 16)),
        ([11, 12, 13, 14], _r(16, 20)),
    ]


def test_fractions_and_default_test_size() -> None:
    cv = PurgedWalkForward(n_splits=2, test_size=0.1, embargo=0.05)
    assert cv.folds(100) == [Fold(0, 0, 75, 75, 80, 90), Fold(1, 0, 85, 85, 90, 100)]
    # default: n // (n_splits + 1) = 3 per block, like sklearn's TimeSeriesSplit
    assert _folds(PurgedWalkForward(n_splits=3), 12) == [
        (_r(0, 3), _r(3, 6)),
        (_r(0, 6), _r(6, 9)),
        (_r(0, 9), _r(9, 12)),
    ]


def test_no_training_label_overlaps_its_test_block() -> None:
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 1500)))
    labels = drop_unlabeled(triple_barrier_labels(close, horizon=24, vol_window=30))
    t1 = labels["t1"].to_numpy()
    cv = PurgedWalkForward(n_splits=5, test_size=200, embargo=10, min_train_size=100)
    splits = list(cv.split(labels.height, t1))
    assert len(splits) == 5
    purged_any = False
    for train, test in splits:
        lo, hi = int(test[0]), int(test[-1])
        assert np.all(train < lo)  # walk-forward: strictly before the test block
        assert not np.any((train <= hi) & (t1[train] >= lo))  # purge
        assert np.all(train < lo - 10)  # embargo
        purged_any |= bool(np.any((np.arange(lo - 10) >= 0) & (t1[: lo - 10] >= lo)))
    assert purged_any  # the data really had labels that needed purging beyond the embargo
    # deterministic
    again = list(cv.split(labels.height, t1))
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
               for a, b in zip(splits, again, strict=True))


def test_bad_configs_rejected() -> None:
    with pytest.raises(ConfigError, match="leave no training data"):
        list(PurgedWalkForward(n_splits=5, test_size=4).split(20))
    with pytest.raises(ConfigError, match="fold 0 has 2 training samples.*min_train_size=5"):
        list(PurgedWalkForward(n_splits=3, test_size=4, embargo=6, min_train_size=5).split(20))
    with pytest.raises(ConfigError, match=r"t1\[2\]=1 is before sample 2"):
        list(PurgedWalkForward(n_splits=2, test_size=2).split(6, [0, 1, 1, 3, 4, 5]))
    with pytest.raises(ConfigError, match="fraction"):
        PurgedWalkForward(n_splits=2, embargo=1.5).folds(10)
