"""examples/autoopt-example-plugin, a third-party plugin written against the public interfaces
only (a numpy trainer, a feature set, a data source), registered the way its entry point would:
`autoopt retrain` releases its model on its own source and features, `autoopt plugins` lists
its components by kind, and a ModelWatcher predicts from raw bars through the plugin's feature
set, equal to the pipeline's rows."""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec
import numpy as np

from autoopt.client import ModelWatcher
from autoopt.config import Config, PipelineConfig
from autoopt.log import EventLog
from autoopt.pipeline import run_retrain
from autoopt.pipeline.dataset import build_dataset
from autoopt.plugins import load_plugins
from autoopt.registry import ModelRegistry

EXAMPLE = Path(__file__).parent.parent / "examples" / "autoopt-example-plugin"
URI = "synth:EDGE?seed=3&persistence=0.75&n=1200"


def _plugins():  # noqa: ANN202
    sys.path.insert(0, str(EXAMPLE))
    try:
        from autoopt_example_plugin import plugin
    finally:
        sys.path.remove(str(EXAMPLE))
    plugins = load_plugins()
    plugins.register(plugin, "example", version="0.1.0", source="autoopt-example-plugin")
    return plugins


async def test_example_plugin_runs_through_retrain_and_the_watcher(event_log: EventLog,
                                                                   tmp_path: Path) -> None:
    plugins = _plugins()
    kinds = {(k, n) for k in ("trainer", "feature_set", "data_source")
             for n in plugins.components(k)}
    assert {("trainer", "logreg"), ("feature_set", "example-returns"),
            ("data_source", "synth")} <= kinds
    gate = msgspec.convert({"margin": 0.0, "dsr_threshold": 0.0, "min_trades": 0},
                           type=type(PipelineConfig().gate))
    cfg = msgspec.structs.replace(Config(data_dir=str(tmp_path / "data")), pipeline=PipelineConfig(
        models=["logreg"], feature_set="example-returns", trials=3, gate=gate))
    summary = await run_retrain(cfg, source=URI, event_log=event_log, plugins=plugins)
    (result,) = summary.results
    assert result.release_id is not None, result.reasons
    assert result.n_trials == 3
    registry = ModelRegistry(cfg.data_dir)
    manifest = registry.manifest("EDGE", result.release_id)
    assert (manifest.trainer, manifest.model_type) == ("logreg", "example-logreg")
    assert (manifest.feature_set, manifest.feature_set_version) == ("example-returns", "1")
    assert manifest.feature_params == {"window": 10} and manifest.lookback == 11

    watcher = ModelWatcher("EDGE", log=event_log, registry=registry, plugins=plugins)
    await watcher.start()
    try:
        champion = watcher.current
        assert champion is not None and champion.release_id == result.release_id
        bars = plugins.component("data_source", "synth").load(URI)["EDGE"]
        ds = build_dataset("EDGE", bars, plugins.component("feature_set", "example-returns"),
                           cfg.pipeline.label)
        cols = [ds.feature_names.index(c) for c in manifest.features]
        expected = champion.predictor.predict_proba(ds.X[:, cols])
        got = watcher.predict(bars)[np.searchsorted(bars["ts"].to_numpy(), ds.ts)]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        assert abs(watcher.predict_latest(bars.tail(11)) - watcher.predict(bars)[-1]) < 1e-12
    finally:
        await watcher.close()
