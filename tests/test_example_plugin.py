"""examples/autoopt-example-plugin, a third-party plugin written against the public interfaces
only (an SDK trainer, a feature set, a data source): `autoopt retrain` releases its model on its
own source and features, the core running the trainer's search; a ModelWatcher predicts from raw
bars through the plugin's feature set, equal to the pipeline's rows; `autoopt plugins` lists its
components by kind and `autoopt backtest` runs its policies on them.

CI installs the package (`pip install ./examples/autoopt-example-plugin`, non-editable: its
entry point is then loaded by every autoopt process). Where it is not installed, the test
registers it in-process as its entry point would, and gives the CLI processes it starts the
package's source and entry point on ``PYTHONPATH`` (a ``.dist-info`` beside it), so the same
test runs either way."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest

from autoopt.client import ModelWatcher
from autoopt.config import Config, PipelineConfig
from autoopt.log import EventLog
from autoopt.pipeline import run_retrain
from autoopt.pipeline.dataset import build_dataset
from autoopt.plugins import load_plugins
from autoopt.registry import ModelRegistry

EXAMPLE = Path(__file__).parent.parent / "examples" / "autoopt-example-plugin"
URI = "synth:EDGE?seed=3&persistence=0.75&n=1200"


def _installed() -> bool:
    return any(ep.name == "example" for ep in md.entry_points(group="autoopt"))


@pytest.fixture
def plugins():  # noqa: ANN201
    plugins = load_plugins()
    if not plugins.pm.has_plugin("example"):
        assert not _installed()
        sys.path.insert(0, str(EXAMPLE))
        try:
            from autoopt_example_plugin import plugin
        finally:
            sys.path.remove(str(EXAMPLE))
        plugins.register(plugin, "example", version="0.1.0", source="autoopt-example-plugin")
    return plugins


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """The environment of an autoopt CLI process that finds the example plugin."""
    env = dict(os.environ) | {"COLUMNS": "250"}  # tables on one line each
    if not _installed():
        site = tmp_path / "site"
        info = site / "autoopt_example_plugin-0.1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: autoopt-example-plugin\n"
                                       "Version: 0.1.0\n")
        (info / "entry_points.txt").write_text(
            "[autoopt]\nexample = autoopt_example_plugin.plugin\n")
        env["PYTHONPATH"] = os.pathsep.join(
            [str(site), str(EXAMPLE), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _autoopt(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autoopt", *args], env=env, text=True,
                          capture_output=True, timeout=600)


async def test_example_plugin_runs_through_retrain_and_the_watcher(
        event_log: EventLog, tmp_path: Path, plugins) -> None:  # noqa: ANN001
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


def test_example_plugin_is_listed_and_runs_through_backtest(
        tmp_path: Path, nats_server: str, cli_env: dict[str, str]) -> None:
    listed = _autoopt(cli_env, "plugins")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for kind, name in (("trainer", "logreg"), ("feature_set", "example-returns"),
                       ("data_source", "synth")):
        assert any(kind in line and name in line and "autoopt-example-plugin" in line
                   for line in listed.stdout.splitlines()), (kind, name, listed.stdout)

    config = tmp_path / "autoopt.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[nats]\nurls = ["{nats_server}"]\n'
                      '[pipeline]\nmodels = ["logreg"]\nfeature_set = "example-returns"\n'
                      "trials = 3\n")
    out = tmp_path / "result.json"
    run = _autoopt(cli_env, "--config", str(config), "backtest", "--source", URI,
                   "--symbols", "EDGE", "--policies", "never,weekly", "--trials", "3",
                   "--quiet", "--json", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    policies = {p["policy"]: p for p in result["policies"]}
    assert list(policies) == ["never", "weekly"] and result["trials"] == 3
    assert policies["weekly"]["retrains"] > policies["never"]["retrains"]
    assert policies["weekly"]["failures"] == 0
    assert len(policies["weekly"]["paths"]["EDGE"]["returns"]) > 100
