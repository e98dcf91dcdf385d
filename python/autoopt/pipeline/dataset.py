"""Dataset building: bars → validate → features → labels → aligned training arrays.

Why one place: this is where look-ahead could creep in, so the alignment rules live together.

* Row t's features use bars 0..t only (the feature set's contract, tested for the default set).
* Row t's label looks at bars t..t1[t]; `t1` travels with the rows so CV can purge.
* ``forward_returns[t] = close[t+1] / close[t] - 1``: what a position decided at the close of
  bar t earns over the next bar (the convention of `autoopt.validation.metrics`).
* Rows dropped: the feature set's warm-up rows and rows without a label (the last ``horizon``
  bars, and the triple barrier's volatility warm-up). `t1` is re-based after dropping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from autoopt.config import CVConfig, LabelConfig
from autoopt.data import ValidationPolicy, ValidationReport, validate_bars
from autoopt.errors import ConfigError, DataError
from autoopt.labels import drop_unlabeled, fixed_horizon_labels, triple_barrier_labels
from autoopt.plugins.interfaces import FeatureSet
from autoopt.validation.cv import GridWalkForward, PurgedWalkForward

YEAR_NS = 365.25 * 86_400 * 1_000_000_000

_TIMEFRAMES = (
    ("1s", 1), ("1m", 60), ("3m", 180), ("5m", 300), ("15m", 900), ("30m", 1800), ("1h", 3600),
    ("2h", 7200), ("4h", 14_400), ("6h", 21_600), ("12h", 43_200), ("1d", 86_400),
    ("1w", 604_800),
)


@dataclass(frozen=True)
class Dataset:
    """Aligned training rows of one symbol (see the module docstring for the alignment)."""

    symbol: str
    ts: np.ndarray
    X: np.ndarray
    feature_names: tuple[str, ...]
    y: np.ndarray
    """1 where the label is positive (up / profit-take first), else 0; int8."""
    label: np.ndarray
    """The raw label in {-1, 0, 1}."""
    t1: np.ndarray
    """Row position of the last bar each label depends on (may be >= n_rows)."""
    forward_returns: np.ndarray
    periods_per_year: float
    timeframe: str
    report: ValidationReport

    @property
    def n_rows(self) -> int:
        return int(self.ts.size)

    @property
    def data_range(self) -> tuple[int, int]:
        """(first, last) bar timestamp of the rows, Unix ns."""
        return int(self.ts[0]), int(self.ts[-1])

    def columns(self, names: Sequence[str]) -> list[int]:
        """Positions of ``names`` in `feature_names`; DataError naming any that is missing."""
        missing = [n for n in names if n not in self.feature_names]
        if missing:
            raise DataError(
                f"{self.symbol}: features {missing} are not in the dataset {list(self.feature_names)}"
            )
        return [self.feature_names.index(n) for n in names]

    def select(self, names: Sequence[str]) -> Dataset:
        """The same rows with only the named feature columns."""
        idx = self.columns(names)
        return replace(self, X=np.ascontiguousarray(self.X[:, idx]), feature_names=tuple(names))


def timeframe_label(ts: np.ndarray) -> str:
    """Name of the bar spacing (``"1m"``, ``"1h"``, ``"1d"``...): the median gap between bars."""
    if ts.size < 2:
        raise DataError("timeframe_label: need at least 2 bars")
    step_s = float(np.median(np.diff(ts))) / 1e9
    for name, seconds in _TIMEFRAMES:
        if abs(step_s - seconds) <= 0.01 * seconds:
            return name
    return f"{round(step_s)}s"


def periods_per_year(ts: np.ndarray) -> float:
    """Bars per year as observed (so daily stock bars give ~252, not 365)."""
    span = float(ts[-1] - ts[0])
    if ts.size < 2 or span <= 0:
        raise DataError("periods_per_year: need at least 2 bars spanning a positive time")
    return (ts.size - 1) / (span / YEAR_NS)


def validation_policy(fields: Mapping[str, Any]) -> ValidationPolicy:
    """A `ValidationPolicy` from config ``pipeline.data_policy``; ConfigError naming a bad key."""
    return ValidationPolicy.from_config(fields)


def make_labels(close: np.ndarray, cfg: LabelConfig) -> pl.DataFrame:
    if cfg.kind == "direction":
        return fixed_horizon_labels(close, cfg.horizon, cfg.dead_zone)
    return triple_barrier_labels(close, cfg.horizon, cfg.profit_take, cfg.stop_loss, cfg.vol_window)


def build_dataset(
    symbol: str,
    bars: pl.DataFrame,
    feature_set: FeatureSet,
    label: LabelConfig,
    policy: ValidationPolicy | None = None,
) -> Dataset:
    """Validate the bars, compute features and labels, and align them into training rows."""
    clean, report = validate_bars(bars, symbol, policy)
    if clean.height < 3:
        raise DataError(f"{symbol}: {clean.height} bars after validation; need more to train")
    feats = feature_set.compute(clean)
    names = list(feature_set.columns())
    if feats.height != clean.height or feats.columns != names:
        raise DataError(
            f"{symbol}: feature set {feature_set.name!r} returned {feats.height} rows x "
            f"{feats.columns}, expected {clean.height} rows x {names}"
        )
    X_all = feats.cast(pl.Float64).to_numpy()
    if np.isinf(X_all).any():
        bad = names[int(np.flatnonzero(np.isinf(X_all).any(axis=0))[0])]
        raise DataError(f"{symbol}: feature {bad!r} of set {feature_set.name!r} holds ±inf")
    close = clean["close"].to_numpy().astype(np.float64)
    labels = make_labels(close, label)
    fwd = np.full(close.size, np.nan)
    fwd[:-1] = close[1:] / close[:-1] - 1.0
    warm = int(feature_set.warmup())
    frame = labels.with_columns(pl.Series("__row", np.arange(close.size))).with_columns(
        pl.when(pl.col("__row") >= warm).then(pl.lit(1, pl.Int8)).alias("__ok")
    )
    kept = drop_unlabeled(frame, columns=("label", "__ok"), t1="t1")
    if kept.height < 2:
        raise DataError(
            f"{symbol}: no trainable rows: {clean.height} bars, warm-up {warm}, label horizon "
            f"{label.horizon}"
        )
    rows = kept["__row"].to_numpy()
    ts = clean["ts"].to_numpy().astype(np.int64)
    lab = kept["label"].to_numpy().astype(np.int8)
    return Dataset(
        symbol=symbol,
        ts=ts[rows],
        X=np.ascontiguousarray(X_all[rows]),
        feature_names=tuple(names),
        y=(lab == 1).astype(np.int8),
        label=lab,
        t1=kept["t1"].to_numpy().astype(np.int64),
        forward_returns=fwd[rows],
        periods_per_year=periods_per_year(ts),
        timeframe=timeframe_label(ts),
        report=report,
    )


def training_bars(bars: pl.DataFrame, window: int) -> pl.DataFrame:
    """The bars a retrain learns from: the last ``window`` (``pipeline.train_window_bars``),
    or all of them when ``window`` is 0. One rule for the pipeline and the backtest."""
    return bars.tail(window) if window and bars.height > window else bars


def make_folds(ds: Dataset, cfg: CVConfig, grid_ns: int | None = None
               ) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Purged walk-forward folds over the dataset's rows, as configured; with ``grid_ns`` (the
    ``[pipeline.validation] grid``) the test blocks are whole calendar-grid blocks
    (`autoopt.validation.cv.GridWalkForward`; ``test_fraction`` then plays no part)."""
    n = ds.n_rows
    if grid_ns is not None:
        grid = GridWalkForward(grid_ns, n_splits=cfg.n_splits, embargo=cfg.embargo_fraction,
                               min_train_size=max(1, int(cfg.min_train_fraction * n)))
        try:
            return tuple(grid.split(ds.ts, ds.t1))
        except ConfigError as exc:
            raise DataError(f"{ds.symbol}: cannot cut {cfg.n_splits} grid CV folds from {n} "
                            f"rows: {exc}") from exc
    splitter = PurgedWalkForward(
        n_splits=cfg.n_splits,
        test_size=cfg.test_fraction,
        embargo=cfg.embargo_fraction,
        min_train_size=max(1, int(cfg.min_train_fraction * n)),
    )
    try:
        return tuple(splitter.split(n, ds.t1))
    except ConfigError as exc:
        raise DataError(f"{ds.symbol}: cannot cut {cfg.n_splits} CV folds from {n} rows: {exc}") from exc


__all__ = [
    "Dataset",
    "build_dataset",
    "make_folds",
    "make_labels",
    "periods_per_year",
    "timeframe_label",
    "training_bars",
    "validation_policy",
]
