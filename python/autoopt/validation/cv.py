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

**Calendar grid** (`GridWalkForward`, config ``[pipeline.validation] grid = "7d"``): the test
blocks are whole blocks of a fixed calendar grid anchored at `GRID_EPOCH_NS` (1970-01-05
00:00 UTC, a Monday: a ``7d`` grid's blocks run Monday to Monday), not fractions of the rows.
Why: with fractions every block moves when a bar is added, so two retrains a day apart share
nothing; on a grid, every retrain whose data end in the same block cuts the same folds from the
same rows (`autoopt.pipeline.evidence.evidence_bars` cuts the data at the last boundary), so
their fits are identical and a backtest computes them once.
"""

from __future__ import annotations

import re
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
        ends = _ends(n, t1, "PurgedWalkForward")
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
            train = _train_rows(positions, ends, test_start, embargo, k, self.min_train_size,
                                "PurgedWalkForward")
            if not self.expanding:
                train = train[-self.min_train_size :]
            test = positions[test_start:test_end]
            fold = Fold(k, int(train[0]), int(train[-1]) + 1, int(train.size), test_start, test_end)
            yield fold, train, test


GRID_EPOCH_NS = 4 * 86_400 * 1_000_000_000
"""1970-01-05 00:00 UTC, a Monday: every grid's boundaries are this plus whole grid steps."""

_GRID_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_GRID_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_GRID_OFF = {"", "off", "none", "no", "false"}


def parse_grid(text: str | None, key: str = "pipeline.validation.grid") -> int | None:
    """A grid duration (``7d``, ``1d``, ``12h``, ``1w``) in ns; None for off (``""``,
    ``off``). A bad one is one `ConfigError` line naming ``key``."""
    if text is None or str(text).strip().lower() in _GRID_OFF:
        return None
    m = _GRID_RE.match(str(text).lower())
    if m is None or int(m.group(1)) == 0:
        raise ConfigError(f"config key {key!r}: {text!r} is not a grid duration like 7d, 1d "
                          f"or 12h (or off)")
    return int(m.group(1)) * _GRID_UNITS[m.group(2)] * 1_000_000_000


def grid_floor(t_ns: int, grid_ns: int) -> int:
    """The last grid boundary at or before ``t_ns``."""
    return GRID_EPOCH_NS + ((int(t_ns) - GRID_EPOCH_NS) // grid_ns) * grid_ns


def bars_end(ts: np.ndarray) -> int:
    """When the last bar closes: its stamp (bars are stamped with their open) plus the median
    spacing of the last (up to) 64 bars; a pure function of the bars given."""
    ts = np.asarray(ts, dtype=np.int64)
    if ts.size < 2:
        raise ConfigError("grid: need at least 2 bars to know their spacing")
    step = int(np.median(np.diff(ts[-65:])))
    return int(ts[-1]) + max(step, 1)


def grid_boundary(ts: np.ndarray, grid_ns: int) -> int:
    """The last grid boundary at or before the last bar's close: a retrain on these bars
    learns from the bars before it (every bar that closed by it)."""
    return grid_floor(bars_end(ts), grid_ns)


class GridWalkForward:
    """Purged walk-forward whose test blocks are whole calendar-grid blocks.

    The rows are stamped ``ts`` (sorted). The data are taken to end at the boundary after the
    last row's block (`split` is handed rows cut at a grid boundary: the last rows of that
    block lack labels, or were purged before a holdout, nothing more), so that block counts
    as complete. The test blocks are the last ``n_splits`` blocks that hold rows, oldest
    first; each fold trains on the rows before its block after the same purge and embargo as
    `PurgedWalkForward` (expanding, or the last ``min_train_size`` when not)."""

    def __init__(self, grid_ns: int, n_splits: int = 5, embargo: int | float = 0,
                 min_train_size: int = 1, expanding: bool = True) -> None:
        if grid_ns <= 0:
            raise ConfigError(f"GridWalkForward.grid_ns must be > 0, got {grid_ns}")
        if n_splits < 1:
            raise ConfigError(f"GridWalkForward.n_splits must be >= 1, got {n_splits}")
        if min_train_size < 1:
            raise ConfigError(f"GridWalkForward.min_train_size must be >= 1, got {min_train_size}")
        self.grid_ns = grid_ns
        self.n_splits = n_splits
        self.embargo = embargo
        self.min_train_size = min_train_size
        self.expanding = expanding

    def get_n_splits(self) -> int:
        return self.n_splits

    def blocks(self, ts: np.ndarray) -> list[tuple[int, int, int, int]]:
        """The test blocks, oldest first: (block start ns, block end ns, first row, end row)."""
        ts = np.asarray(ts, dtype=np.int64)
        if ts.size < 2:
            raise ConfigError(f"GridWalkForward: need at least 2 samples, got {ts.size}")
        if np.any(np.diff(ts) < 0):
            raise ConfigError("GridWalkForward: row stamps must be sorted")
        g = self.grid_ns
        end = grid_floor(int(ts[-1]), g) + g
        out: list[tuple[int, int, int, int]] = []
        while len(out) < self.n_splits:
            lo_ns = end - g
            lo = int(np.searchsorted(ts, lo_ns, side="left"))
            hi = int(np.searchsorted(ts, end, side="left"))
            if lo == 0:  # the block holds the first row (or none is left): nothing to train on
                break
            if hi > lo:
                out.append((lo_ns, end, lo, hi))
                end = lo_ns
            else:  # an empty block (a gap in the data): on to the block of the previous row
                end = grid_floor(int(ts[lo - 1]), g) + g
        if len(out) < self.n_splits:
            raise ConfigError(
                f"GridWalkForward: {ts.size} rows hold {len(out)} grid blocks after the first "
                f"one; {self.n_splits} test blocks need more data")
        return out[::-1]

    def split(self, ts: np.ndarray, t1: Sequence[int] | np.ndarray | None = None
              ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for _, train, test in self._folds(ts, t1):
            yield train, test

    def folds(self, ts: np.ndarray, t1: Sequence[int] | np.ndarray | None = None) -> list[Fold]:
        return [f for f, _, _ in self._folds(ts, t1)]

    def _folds(self, ts: np.ndarray, t1: Sequence[int] | np.ndarray | None
               ) -> Iterator[tuple[Fold, np.ndarray, np.ndarray]]:
        n = int(np.asarray(ts).size)
        ends = _ends(n, t1, "GridWalkForward")
        embargo = _size(self.embargo, n, "embargo")
        positions = np.arange(n, dtype=np.int64)
        for k, (_, _, test_start, test_end) in enumerate(self.blocks(ts)):
            train = _train_rows(positions, ends, test_start, embargo, k, self.min_train_size,
                                "GridWalkForward")
            if not self.expanding:
                train = train[-self.min_train_size :]
            test = positions[test_start:test_end]
            yield (Fold(k, int(train[0]), int(train[-1]) + 1, int(train.size), test_start,
                        test_end), train, test)


def _ends(n: int, t1: Sequence[int] | np.ndarray | None, who: str) -> np.ndarray:
    if n < 2:
        raise ConfigError(f"{who}: need at least 2 samples, got {n}")
    if t1 is None:
        return np.arange(n, dtype=np.int64)
    ends = np.asarray(t1, dtype=np.int64)
    if ends.shape != (n,):
        raise ConfigError(f"{who}: t1 has shape {ends.shape}, expected ({n},)")
    if np.any(ends < np.arange(n)):
        i = int(np.flatnonzero(ends < np.arange(n))[0])
        raise ConfigError(f"{who}: t1[{i}]={int(ends[i])} is before sample {i}")
    return ends


def _train_rows(positions: np.ndarray, ends: np.ndarray, test_start: int, embargo: int, k: int,
                min_train_size: int, who: str) -> np.ndarray:
    """The rows before ``test_start`` less the embargo, purged of labels reaching the test
    (both splitters' one rule)."""
    cand = positions[: max(test_start - embargo, 0)]
    train = cand[ends[cand] < test_start]  # purge
    if train.size < min_train_size:
        raise ConfigError(
            f"{who}: fold {k} has {train.size} training samples after purge and embargo, "
            f"below min_train_size={min_train_size}")
    return train


__all__ = ["GRID_EPOCH_NS", "Fold", "GridWalkForward", "PurgedWalkForward", "bars_end",
           "grid_boundary", "grid_floor", "parse_grid"]
