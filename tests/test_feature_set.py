"""The default feature set: the promised columns, scale-free, and no look-ahead: row t never
depends on bars after t (prefix recomputation and future perturbation, on real bars)."""

from __future__ import annotations

import numpy as np
import polars as pl

from autoopt.builtins.features import COLUMNS, WARMUP, DefaultFeatureSet
from autoopt.builtins.sources import BundledSource
from autoopt.plugins import load_plugins


def _eurusd() -> pl.DataFrame:
    return BundledSource().load("bundled:EURUSD")["EURUSD"]


def test_columns_shape_and_warmup() -> None:
    bars = _eurusd()
    feats = DefaultFeatureSet().compute(bars)
    assert feats.columns == list(COLUMNS) and feats.height == bars.height
    X = feats.to_numpy()
    # everything is defined after the warm-up, nothing is infinite
    assert np.isfinite(X[WARMUP:]).all()
    assert np.isnan(X[: WARMUP - 1]).any(axis=1).all()
    # ratios, not price levels: multiplying every price by 1000 changes nothing
    scaled = bars.with_columns(pl.col(c) * 1000.0 for c in ("open", "high", "low", "close"))
    assert np.allclose(DefaultFeatureSet().compute(scaled).to_numpy()[WARMUP:], X[WARMUP:],
                       rtol=1e-9, atol=1e-12)


def test_no_feature_at_t_uses_data_after_t() -> None:
    bars = _eurusd().head(1500)
    fs = DefaultFeatureSet()
    full = fs.compute(bars).to_numpy()
    for cut in (WARMUP + 1, 400, 1000, 1499):
        prefix = fs.compute(bars.head(cut)).to_numpy()
        assert np.allclose(prefix, full[:cut], equal_nan=True, rtol=0, atol=1e-12), cut
    # wreck the future after row 700: rows 0..700 must not move
    rng = np.random.default_rng(0)
    future = np.arange(bars.height) > 700
    noisy = bars.with_columns(
        pl.when(pl.Series(future)).then(pl.col(c) * pl.Series(rng.uniform(0.5, 1.5, bars.height)))
        .otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close", "volume")
    )
    perturbed = fs.compute(noisy).to_numpy()
    assert np.allclose(perturbed[:701], full[:701], equal_nan=True, rtol=0, atol=1e-12)
    assert not np.allclose(perturbed[701:], full[701:], equal_nan=True)


def test_the_feature_set_is_registered_as_default() -> None:
    plugins = load_plugins()
    assert isinstance(plugins.component("feature_set", "default"), DefaultFeatureSet)
