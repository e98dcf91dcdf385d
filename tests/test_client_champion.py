"""Champion.predict: a real retrain on seeded planted-edge bars releases a LightGBM model whose
manifest records its feature set, label config and lookback; a ModelWatcher loads it and its
predictions from raw bars equal the released model's on the rows the pipeline validated, and
predict_latest on the trailing lookback window equals the full-history value."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pytest

from autoopt.client import ModelWatcher
from autoopt.config import Config, PipelineConfig
from autoopt.errors import DataError
from autoopt.log import EventLog
from autoopt.pipeline import run_retrain
from autoopt.pipeline.dataset import build_dataset
from autoopt.plugins import load_plugins
from autoopt.registry import ModelRegistry
from autoopt.synthetic import planted_bars


async def test_champion_predicts_from_raw_bars_as_validated(event_log: EventLog,
                                                            tmp_path: Path) -> None:
    bars = planted_bars(11, "hourly", 0.7, n=900)
    path = tmp_path / "EDGE.csv"
    bars.with_columns(pl.from_epoch("ts", time_unit="ns")).write_csv(path)
    cfg = msgspec.structs.replace(
        Config(data_dir=str(tmp_path / "data")),
        pipeline=PipelineConfig(trials=2, pruning=False, gate=msgspec.convert(
            {"margin": 0.0, "dsr_threshold": 0.0, "min_trades": 0, "max_pbo": 1.0,
             "holdout_min_sharpe": float("-inf")},
            type=type(PipelineConfig().gate))))
    summary = await run_retrain(cfg, source=f"file:{path}", symbols=["EDGE"], event_log=event_log)
    rid = summary.results[0].release_id
    assert rid is not None, summary.results[0].reasons

    manifest = ModelRegistry(cfg.data_dir).manifest("EDGE", rid)
    assert (manifest.feature_set, manifest.feature_set_version) == ("default", "1")
    assert manifest.label["kind"] == "direction" and manifest.lookback == 500

    plugins = load_plugins()
    watcher = ModelWatcher("EDGE", log=event_log, registry=ModelRegistry(cfg.data_dir),
                           plugins=plugins)
    await watcher.start()
    try:
        champion = watcher.current
        assert champion is not None and champion.release_id == rid
        # the rows the pipeline built and validated on, scored by the released model directly
        ds = build_dataset("EDGE", bars, plugins.component("feature_set", "default"),
                           cfg.pipeline.label)
        cols = [ds.feature_names.index(c) for c in manifest.features]
        recorded = champion.predictor.predict_proba(np.ascontiguousarray(ds.X[:, cols]))

        from_bars = watcher.predict(bars)  # every bar, NaN in the warm-up
        rows = np.searchsorted(bars["ts"].to_numpy(), ds.ts)
        np.testing.assert_array_equal(from_bars[rows], recorded)
        assert np.isnan(from_bars[:50]).all()

        window = bars.tail(champion.bars_needed)
        assert watcher.predict_latest(window) == pytest.approx(from_bars[-1], abs=1e-12)
        assert watcher.predict_latest(bars) == pytest.approx(from_bars[-1], abs=1e-12)
        with pytest.raises(DataError, match="warm-up of 50"):
            watcher.predict_latest(bars.tail(20))
    finally:
        await watcher.close()


def test_latest_row_without_a_frame_equals_the_frame_path() -> None:
    """The live path (the feature set's ``compute_numpy`` over the trailing window, no polars
    frame) gives exactly the frame path's row, and the full-history row to 1e-12, for every
    kind of bars an engine passes."""
    from autoopt.client.champion import ReleaseFeatures
    from autoopt.events import BarBatch

    fs = load_plugins().component("feature_set", "default")
    used = ["rsi14", "sma50_ratio", "macd_hist", "volume_z20"]  # a subset, in another order
    feats = ReleaseFeatures(fs, used, lookback=500)  # what the recipe records for this set
    assert feats._numpy is not None  # the default set has the frame-free path
    bars = planted_bars(5, "hourly", 0.7, n=800)
    full = feats.matrix(bars)
    cols = {c: bars[c].to_numpy() for c in bars.columns}
    for t in (60, 499, 799):
        frame = bars.slice(0, t + 1)
        window = {c: v[: t + 1] for c, v in cols.items()}
        batch = BarBatch.from_arrays(symbol="SYN", timeframe="1h", **window)
        framed = feats.matrix(frame.tail(feats.lookback))[-1:]
        for bars_in in (frame, window, batch):
            row = feats.latest(bars_in)
            assert row.shape == (1, len(used))
            np.testing.assert_array_equal(row, framed)
            np.testing.assert_allclose(row, full[t: t + 1], rtol=0, atol=1e-12)
    with pytest.raises(DataError, match="warm-up of 50"):
        feats.latest({c: v[:30] for c, v in cols.items()})
