"""ModelWatcher on real releases: a real `autoopt retrain` (LightGBM, bundled daily GOOG bars)
releases a model, `await ModelWatcher.open(symbol, config)` loads it through the trainer id the
release recorded and predicts on real bars; a second release (through the pipeline's release
steps) and an `autoopt releases rollback` are swapped in live."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from autoopt.cli.releases import app as releases_app
from autoopt.cli.retrain import app as retrain_app
from autoopt.client import LoadedModel, ModelWatcher
from autoopt.clock import SystemClock
from autoopt.config import Config, load_config
from autoopt.events import ValidationVerdict
from autoopt.log import EventLog
from autoopt.pipeline.release import ReleaseSteps, read_history
from autoopt.plugins import load_plugins
from autoopt.registry import ModelRegistry


def _config_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "autoopt.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'[nats]\nurls = ["{url}"]\n'
        "[pipeline]\ntrials = 3\npruning = false\n"
        "[pipeline.gate]\nmargin = 0.0\ndsr_threshold = 0.0\nmin_trades = 0\n"
        "max_pbo = 1.0\nholdout_min_sharpe = -inf\n"
    )
    return path


def _predict(model: LoadedModel, config: Config) -> np.ndarray:
    plugins = load_plugins()
    bars = plugins.data_source_for("bundled:GOOG").load("bundled:GOOG")["GOOG"]
    feats = plugins.component("feature_set", config.pipeline.feature_set).compute(bars)
    return model.predict_proba(feats.select(model.feature_names).to_numpy()[-200:])


async def _second_release(config: Config, first: str) -> str:
    """A second real LightGBM release of GOOG, released and promoted by the pipeline's steps."""
    registry = ModelRegistry(config.data_dir)
    manifest, files = registry.load("GOOG", first)
    trainer = load_plugins().trainer("lgbm")
    model = trainer.load(files)
    params = dict(manifest.params) | {"num_boost_round": 7}
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, len(manifest.features)))
    y = (model.predict_proba(X) > 0.5).astype(np.int8)
    refit = trainer.fit(X, y, params, manifest.features)
    second, blobs = registry.prepare(
        "GOOG", refit.to_files(), model_type=trainer.model_type, trainer="lgbm",
        created_at=SystemClock().now_ns(), params=params, features=manifest.features,
        metrics=manifest.metrics, data_range=(0, 1), parent_release=first)
    registry.stage(second, blobs)
    log = await EventLog.connect(config.nats)
    try:
        verdict = ValidationVerdict.new(symbol="GOOG", challenger=second.release_id, passed=True,
                                        champion=first, reasons=["test: a second release"])
        await log.append(verdict)
        steps = ReleaseSteps(log, registry, SystemClock(), "test-run")
        await steps.complete(verdict, await read_history(log, "GOOG"), None)
    finally:
        await log.close()
    return second.release_id


def test_watcher_loads_real_releases_and_follows_release_and_rollback(
    tmp_path: Path, nats_server: str
) -> None:
    cfg_path = _config_file(tmp_path, nats_server)
    env = {"AUTOOPT_CONFIG": str(cfg_path)}
    res = CliRunner().invoke(retrain_app, ["--source", "bundled:GOOG", "--symbols", "GOOG",
                                           "--quiet"], env=env)
    assert res.exit_code == 0, res.output
    config = load_config(cfg_path, environ={})
    registry = ModelRegistry(config.data_dir)
    first = registry.current("GOOG")
    assert first is not None
    manifest = registry.manifest("GOOG", first)
    assert (manifest.model_type, manifest.trainer) == ("lightgbm", "lgbm")

    async def scenario() -> None:
        swaps: list[tuple[str, str | None]] = []
        watcher = await ModelWatcher.open(
            "GOOG", config,
            on_swap=lambda new, old: swaps.append((new.release_id, old and old.release_id)))
        try:
            loaded = watcher.current
            assert loaded is not None and loaded.release_id == first
            assert loaded.feature_names == manifest.features and loaded.lookback == 1
            p_first = _predict(loaded, config)
            assert p_first.shape == (200,) and np.all((p_first >= 0) & (p_first <= 1))
            _, files = registry.load("GOOG", first)
            direct = load_plugins().trainer("lgbm").load(files)
            np.testing.assert_array_equal(
                p_first, _predict(LoadedModel("GOOG", first, manifest, direct, ""), config))

            second = await _second_release(config, first)
            await watcher.wait_for(second, timeout=30)
            assert not np.array_equal(_predict(watcher.current, config), p_first)  # type: ignore[arg-type]

            res = await asyncio.to_thread(
                CliRunner().invoke, releases_app, ["rollback", "GOOG", "--reason", "test"],
                env=env)
            assert res.exit_code == 0, res.output
            await watcher.wait_for(first, timeout=30)
            np.testing.assert_array_equal(_predict(watcher.current, config), p_first)  # type: ignore[arg-type]
            assert swaps == [(first, None), (second, first), (first, second)]
            assert watcher.errors == []
        finally:
            await watcher.close()

    asyncio.run(scenario())
