"""Combinatorial purged cross-validation (López de Prado, AFML ch. 12).

Why: walk-forward gives one out-of-sample path, so one Sharpe ratio, whose luck cannot be told
from skill. CPCV cuts the rows into ``N`` contiguous groups and tests on every choice of ``k``
of them (``C(N, k)`` splits), training on the rest. Every group is tested in ``C(N−1, k−1)``
splits, so the test blocks assemble into ``φ = C(N, k)·k/N`` complete out-of-sample paths over
all rows: a distribution of path Sharpe ratios instead of one number.

- **purge**: a training row ``i`` whose label interval ``[i, t1[i]]`` overlaps a test group
  ``[s, e)`` (``i < e`` and ``t1[i] >= s``) is removed: its label looks at test-period prices;
- **embargo**: the ``embargo`` rows right *after* each test group are removed: their features
  are built from test-period bars (training after a test block happens here, unlike
  walk-forward).

Paths: split ``j`` (in `itertools.combinations` order) tests groups ``combos[j]``; group ``g``'s
``p``-th split (in that order) fills group ``g`` of path ``p``. A pure function of the arguments.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import numpy as np

from autoopt.errors import ConfigError, DataError


class CombinatorialPurgedCV:
    """CPCV splitter: ``n_groups`` groups, ``n_test_groups`` tested per split (see module doc)."""

    def __init__(self, n_groups: int = 6, n_test_groups: int = 2, embargo: int | float = 0) -> None:
        if n_groups < 2:
            raise ConfigError(f"CPCV: n_groups must be >= 2, got {n_groups}")
        if not 1 <= n_test_groups < n_groups:
            raise ConfigError(
                f"CPCV: n_test_groups must be in [1, n_groups), got {n_test_groups} of {n_groups}")
        if isinstance(embargo, bool) or embargo < 0 or (isinstance(embargo, float) and embargo >= 1):
            raise ConfigError(f"CPCV: embargo must be >= 0 rows or a fraction in [0, 1), got {embargo}")
        self.n_groups = n_groups
        self.n_test_groups = n_test_groups
        self.embargo = embargo

    @property
    def n_splits(self) -> int:
        return math.comb(self.n_groups, self.n_test_groups)

    @property
    def n_paths(self) -> int:
        """φ = C(N, k)·k/N: how many full out-of-sample paths the splits assemble into."""
        return self.n_splits * self.n_test_groups // self.n_groups

    def combos(self) -> list[tuple[int, ...]]:
        """The test groups of each split, in split order."""
        return list(itertools.combinations(range(self.n_groups), self.n_test_groups))

    def groups(self, n: int) -> list[tuple[int, int]]:
        """(start, end) row positions of each group (end exclusive; sizes differ by at most 1)."""
        if n < self.n_groups:
            raise DataError(f"CPCV: {n} rows cannot make {self.n_groups} groups")
        edges = np.linspace(0, n, self.n_groups + 1).astype(np.int64)
        return [(int(edges[g]), int(edges[g + 1])) for g in range(self.n_groups)]

    def split(
        self, n: int, t1: Sequence[int] | np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (train_idx, test_idx) int64 arrays, one per split, test rows in time order."""
        ends = np.arange(n, dtype=np.int64) if t1 is None else np.asarray(t1, dtype=np.int64)
        if ends.shape != (n,):
            raise DataError(f"CPCV: t1 has shape {ends.shape}, expected ({n},)")
        embargo = int(self.embargo * n) if isinstance(self.embargo, float) else int(self.embargo)
        bounds = self.groups(n)
        pos = np.arange(n, dtype=np.int64)
        for combo in self.combos():
            keep = np.ones(n, dtype=bool)
            for g in combo:
                s, e = bounds[g]
                keep &= ~((pos < e) & (ends >= s))  # the group itself and its purge
                keep[e : min(n, e + embargo)] = False  # embargo after the group
            train = pos[keep]
            if train.size == 0:
                raise DataError(f"CPCV: split {combo} has no training rows after purge and embargo")
            test = np.concatenate([pos[bounds[g][0] : bounds[g][1]] for g in combo])
            yield train, test

    def path_assignment(self) -> list[list[int]]:
        """``out[p][g]``: the split whose test block fills group g of path p."""
        per_group: list[list[int]] = [[] for _ in range(self.n_groups)]
        for j, combo in enumerate(self.combos()):
            for g in combo:
                per_group[g].append(j)
        return [[per_group[g][p] for g in range(self.n_groups)] for p in range(self.n_paths)]

    def paths(self, n: int, split_returns: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Assemble per-split test returns (each in its test rows' order) into φ path series."""
        if len(split_returns) != self.n_splits:
            raise DataError(f"CPCV: {len(split_returns)} split results for {self.n_splits} splits")
        bounds = self.groups(n)
        pieces: dict[tuple[int, int], np.ndarray] = {}
        for j, (combo, r) in enumerate(zip(self.combos(), split_returns, strict=True)):
            sizes = [bounds[g][1] - bounds[g][0] for g in combo]
            r = np.asarray(r, dtype=np.float64)
            if r.size != sum(sizes):
                raise DataError(f"CPCV: split {j} has {r.size} returns for {sum(sizes)} test rows")
            for g, chunk in zip(combo, np.split(r, np.cumsum(sizes)[:-1]), strict=True):
                pieces[(j, g)] = chunk
        return [np.concatenate([pieces[(j, g)] for g, j in enumerate(row)])
                for row in self.path_assignment()]


__all__ = ["CombinatorialPurgedCV"]
