"""Purged walk-forward cross-validation with an embargo (after López de Prado, AFML ch. 7).

Folds: the last ``n_splits * test_size`` samples are cut into ``n_splits`` contiguous test blocks,
oldest first. Each fold trains only on samples *before* its test block, then:

- **purge**: a training sample ``i`` whose label interval ``[i, t1[i]]`` reaches into the test
  block (``t1[i] >= test_start``) is removed, so no training label looks at test-period prices;
- **embargo**: the ``embargo`` samples immediately before the test block are removed as well.
  In López de Prado's k-fold the embargo sits *after* the test block, because training data
  there would have features built from test-period bars. Walk-forward never trains after its
  test block, so that rule would remove nothing; the equivalent hazard here is the training
  samples right before the test block, whose features and labels are serially correlated with
  the first test samples. With ``t1`` unknown, an embargo >= the label horizon is also what
  keeps overlapping labels out.

``expanding=True`` trains on everything that survives before the test block; ``False`` keeps only
the most recent ``min_train_size`` survivors (a rolling window). Folds are a pure function of the
arguments: deterministic, no randomness.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import msgspec
import numpy as np

from autoopt.errors import ConfigError


class Fold(msgspec.Struct, frozen=True):
    """Boundaries of one fold, in sample positions (end exclusive) — for reports and events."""

    index: int
    train_start: int
    train_end: int
    n_train: int
    test_start: int
    test_end: int


def _size(value: int | float, n: int, name: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"PurgedWalkForward.{name} must be an int or a fraction, got {value!r}")
    if isinstance(value, float):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"PurgedWalkForward.{name} as a fraction must be in [0, 1), got {value}")
        return int(value * n)
    if value < 0:
        raise ConfigError(f"PurgedWalkForward.{name} must be >= 0, got {value}")
    return int(value)


class PurgedWalkForward:
    """Walk-forward splitter that purges overlapping labels and embargoes the pre-test samples."""

    def __init__(
        self,
        n_splits: int = 5,
        test_size: int | float | None = None,
        embargo: int | float = 0,
        min_train_size: int = 1,
        expanding: bool = True,
    ) -> None:
        if n_splits < 1:
            raise ConfigError(f"PurgedWalkForward.n_splits must be >= 1, got {n_splits}")
        if min_train_size < 1:
            raise ConfigError(f"PurgedWalkForward.min_train_size must be >= 1, got {min_train_size}")
        self.n_splits = n_splits
        self.test_size = test_size
        self.embargo = embargo
        self.min_train_size = min_train_size
        self.expanding = expanding

    def get_n_splits(self) -> int:
        return self.n_splits

    def _test_size(self, n: int) -> int:
        if self.test_size is None:
            size = n // (self.n_splits + 1)
        else:
            size = _size(self.test_size, n, "test_size")
        if size < 1:
            raise ConfigError(f"PurgedWalkForward: test_size resolves to {size} for {n} samples")
        return size

    def split(
        self, n_samples: int, t1: Sequence[int] | np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (train_idx, test_idx) int64 arrays, oldest fold first.

        `t1[i]` is the position of the last sample that sample i's label depends on (see
        `autoopt.labels`); positions >= n_samples are allowed. None means t1[i] = i.
        """
        for fold, train, test in self._folds(n_samples, t1):
            del fold
            yield train, test

    def folds(self, n_samples: int, t1: Sequence[int] | np.ndarray | None = None) -> list[Fold]:
        """The fold boundaries `split` would use."""
        return [f for f, _, _ in self._folds(n_samples, t1)]

    def _folds(
        self, n: int, t1: Sequence[int] | np.ndarray | None
    ) -> Iterator[tuple[Fold, np.ndarray, np.ndarray]]:
        if n < 2:
            raise ConfigError(f"PurgedWalkForward: need at least 2 samples, got {n}")
        if t1 is None:
            ends = np.arange(n, dtype=np.int64)
        else:
            ends = np.asarray(t1, dtype=np.int64)
            if ends.shape != (n,):
                raise ConfigError(f"PurgedWalkForward: t1 has shape {ends.shape}, expected ({n},)")
            if np.any(ends < np.arange(n)):
                i = int(np.flatnonzero(ends < np.arange(n))[0])
                raise ConfigError(f"PurgedWalkForward: t1[{i}]={int(ends[i])} is before sample {i}")
        size = self._test_size(n)
        embargo = _size(self.embargo, n, "embargo")
        first_test = n - self.n_splits * size
        if first_test < 1:
            raise ConfigError(
                f"PurgedWalkForward: {self.n_splits} test blocks of {size} leave no training data "
                f"in {n} samples"
            )
        positions = np.arange(n, dtype=np.int64)
        for k in range(self.n_splits):
            test_start = first_test + k * size
            test_end = test_start + size
            cand = positions[: max(test_start - embargo, 0)]
            train = cand[ends[cand] < test_start]  # purge
            if train.size < self.min_train_size:
                raise ConfigError(
                    f"PurgedWalkForward: fold {k} has {train.size} training samples after purge "
                    f"and embargo, below min_train_size={self.min_train_size}"
                )
            if not self.expanding:
                train = train[-self.min_train_size :]
            test = positions[test_start:test_end]
            fold = Fold(k, int(train[0]), int(train[-1]) + 1, int(train.size), test_start, test_end)
            yield fold, train, test


__all__ = ["Fold", "PurgedWalkForward"]
