"""Dataset building: validation first, warm-up and unlabeled rows dropped, t1 re-based, forward
returns aligned to the metrics convention, folds purged."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from autoopt.builtins.sources import BundledSource
from autoopt.config import CVConfig, LabelConfig
from autoopt.errors import ConfigError, DataError
from autoopt.pipeline.dataset import (
    build_dataset,
    make_folds,
    periods_per_year,
    timeframe_label,
    validation_policy,
)

HOUR = 3_600_000_000_000


class LagFeatures:
    """A tiny causal feature set: last return and a 3-bar mean of closes."""

    name = "lag"
    version = "1"

    def columns(self) -> list[str]:
        return ["ret1", "mean3"]

    def warmup(self) -> int:
        return 3

    def compute(self, bars: pl.DataFrame) -> pl.DataFrame:
        c = bars["close"].to_numpy()
        return pl.DataFrame({
            "ret1": np.r_[np.nan, c[1:] / c[:-1] - 1],
            "mean3": pl.Series(c).rolling_mean(3).to_numpy(),
        })


def _bars(n: int = 40) -> pl.DataFrame:
    c = 100.0 + np.cumsum(np.where(np.arange(n) % 3 == 0, -1.0, 1.0))
    return pl.DataFrame({
        "ts": np.arange(n, dtype=np.int64) * HOUR, "open": c, "high": c + 1, "low": c - 1,
        "close": c, "volume": np.full(n, 10.0),
    })


def test_rows_are_aligned_and_warmup_and_unlabeled_rows_dropped() -> None:
    bars = _bars()
    ds = build_dataset("X", bars, LagFeatures(), LabelConfig(kind="direction", horizon=2))
    c = bars["close"].to_numpy()
    # rows 0..2 are warm-up, the last 2 have no label yet
    assert ds.n_rows == 40 - 3 - 2
    assert ds.ts[0] == 3 * HOUR and ds.ts[-1] == 37 * HOUR
    rows = (ds.ts // HOUR).astype(int)
    assert np.allclose(ds.forward_returns, c[rows + 1] / c[rows] - 1)
    assert np.array_equal(ds.y, (c[rows + 2] > c[rows]).astype(np.int8))
    assert np.allclose(ds.X[:, 0], c[rows] / c[rows - 1] - 1)
    # t1 is re-based to dataset rows: label of row i ends two rows later (labels ending on
    # dropped bars point one past the end, which can only widen a purge)
    assert np.array_equal(ds.t1, np.minimum(np.arange(ds.n_rows) + 2, ds.n_rows))
    assert ds.timeframe == "1h"


def test_bad_bars_are_rejected_with_the_rule_before_any_feature_is_computed() -> None:
    bars = _bars().with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(-1.0).otherwise(pl.col("close")).alias("close"))
    with pytest.raises(DataError, match="X: rule 'non_positive' violated at row 7"):
        build_dataset("X", bars, LagFeatures(), LabelConfig())


def test_a_configured_repair_is_applied_and_reported() -> None:
    bars = _bars().with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(None).otherwise(pl.col("volume")).alias("volume"))
    policy = validation_policy({"non_finite": "forward_fill"})
    ds = build_dataset("X", bars, LagFeatures(), LabelConfig(), policy)
    assert ds.report.count("non_finite") == 1 and ds.n_rows == 40 - 3 - 1


def test_a_bad_data_policy_key_names_the_config_key() -> None:
    with pytest.raises(ConfigError, match="pipeline.data_policy"):
        validation_policy({"gaps": "guess"})


def test_triple_barrier_labels_and_purged_folds() -> None:
    close = BundledSource().load("bundled:GOOG")["GOOG"]
    ds = build_dataset("GOOG", close, LagFeatures(),
                       LabelConfig(kind="triple_barrier", horizon=10, vol_window=20))
    assert set(np.unique(ds.label)) <= {-1, 0, 1}
    assert np.all(ds.t1 > np.arange(ds.n_rows)) and np.all(ds.t1 <= np.arange(ds.n_rows) + 10)
    folds = make_folds(ds, CVConfig(n_splits=4, test_fraction=0.1, embargo_fraction=0.0))
    assert len(folds) == 4
    for train, test in folds:
        # no training label reaches into its test block
        assert ds.t1[train].max() < test[0]


def test_periods_per_year_follows_the_calendar_of_the_data() -> None:
    goog = BundledSource().load("bundled:GOOG")["GOOG"]["ts"].to_numpy()
    assert 245 < periods_per_year(goog) < 256  # trading days, not 365
    assert timeframe_label(goog) == "1d"
    assert timeframe_label(np.arange(10, dtype=np.int64) * 60_000_000_000) == "1m"
