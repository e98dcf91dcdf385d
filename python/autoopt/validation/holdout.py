"""The untouched holdout: the most recent rows, seen by nothing before the final gate check.

Why: feature selection, tuning and the walk-forward (or CPCV) validation all choose on the same
folds, so their figures are optimistic however carefully the folds are purged. The last
``fraction`` of the rows is cut off before any of them runs; the chosen recipe is fitted once on
the development rows and scored once on the holdout, and the gate refuses a challenger whose
holdout figures fail. Between the two parts: the development rows whose label interval reaches
into the holdout are purged, and ``embargo`` more rows before it are dropped (as in
`autoopt.validation.cv`), so no development label or feature-serial-correlation touches it.

With a calendar grid (``[pipeline.validation] grid``, `split_holdout_grid`) the holdout is whole
grid blocks: the last complete block(s), as few as cover at least ``fraction`` of the rows, so
it starts on a boundary like the walk-forward test blocks and every retrain whose data end in
the same block holds out the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np

from autoopt.errors import ConfigError, DataError


class HoldoutSplit(msgspec.Struct, frozen=True):
    """Rows ``[0, dev_end)`` are the development set, ``[start, n)`` the holdout."""

    dev_end: int
    start: int
    n: int

    @property
    def size(self) -> int:
        return self.n - self.start


class HoldoutFigures(msgspec.Struct, frozen=True):
    """The holdout's out-of-sample figures of the chosen recipe (fitted on development rows)."""

    sharpe: float
    """Per-period Sharpe ratio after costs."""
    sharpe_annual: float
    total_return: float
    n_trades: int
    n_obs: int
    psr: float
    """P(true per-period Sharpe > 0) from the holdout returns alone."""


def split_holdout(
    n: int, t1: Sequence[int] | np.ndarray | None, fraction: float, embargo: int = 0
) -> HoldoutSplit | None:
    """Where the holdout starts and the development rows end; None when ``fraction`` is 0."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"holdout fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return None
    size = int(round(fraction * n))
    if size < 2:
        raise DataError(f"holdout of {fraction:.0%} of {n} rows is {size} rows: too few")
    return _split_at(n, t1, n - size, embargo)


def split_holdout_grid(
    ts: np.ndarray, t1: Sequence[int] | np.ndarray | None, fraction: float, grid_ns: int,
    embargo: int = 0,
) -> HoldoutSplit | None:
    """The holdout as whole grid blocks: the last blocks (the one holding the last row counts
    as complete: the rows are cut at a boundary, `autoopt.validation.cv.GridWalkForward`),
    as few as hold at least ``fraction`` of the rows; purge and embargo as `split_holdout`."""
    from autoopt.validation.cv import grid_floor

    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"holdout fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return None
    ts = np.asarray(ts, dtype=np.int64)
    n = int(ts.size)
    want = max(2, int(round(fraction * n)))
    start_ns = grid_floor(int(ts[-1]), grid_ns)
    while True:
        start = int(np.searchsorted(ts, start_ns, side="left"))
        if n - start >= want or start == 0:
            break
        start_ns = grid_floor(int(ts[start - 1]), grid_ns)  # one more block (skipping gaps)
    if start == 0:
        raise DataError(f"holdout of whole grid blocks covering {fraction:.0%} of {n} rows "
                        f"leaves no development rows")
    return _split_at(n, t1, start, embargo)


def _split_at(n: int, t1: Sequence[int] | np.ndarray | None, start: int,
              embargo: int) -> HoldoutSplit:
    size = n - start
    ends = np.arange(n, dtype=np.int64) if t1 is None else np.asarray(t1, dtype=np.int64)
    reaching = np.flatnonzero(ends[:start] >= start)  # labels that look into the holdout
    dev_end = int(reaching[0]) if reaching.size else start
    dev_end = max(0, dev_end - int(embargo))
    if dev_end < 2:
        raise DataError(f"holdout of {size} rows leaves {dev_end} development rows")
    return HoldoutSplit(dev_end=dev_end, start=start, n=n)


def holdout_figures(
    returns: np.ndarray, positions: np.ndarray, periods_per_year: float
) -> HoldoutFigures:
    """Figures of the holdout's per-period net returns and the positions that made them."""
    from autoopt.validation.dsr import probabilistic_sharpe_ratio, sharpe_moments

    r = np.asarray(returns, dtype=np.float64)
    if r.size < 4:
        raise DataError(f"holdout: {r.size} returns, need >= 4")
    sr, n_obs, skew, kurt = sharpe_moments(r)
    try:
        psr = probabilistic_sharpe_ratio(sr, 0.0, n_obs, skew, kurt)
    except DataError:
        psr = float("nan")
    pos = np.asarray(positions, dtype=np.float64)
    return HoldoutFigures(
        sharpe=sr, sharpe_annual=sr * float(np.sqrt(periods_per_year)),
        total_return=float(np.prod(1.0 + r) - 1.0),
        n_trades=int(np.count_nonzero(np.diff(pos, prepend=0.0))), n_obs=n_obs, psr=psr)


__all__ = ["HoldoutFigures", "HoldoutSplit", "holdout_figures", "split_holdout",
           "split_holdout_grid"]
