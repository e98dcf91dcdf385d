"""Champion.params: a ModelWatcher opened with ``follow_params`` hands out a champion carrying
the symbol's current strategy params. A real params release swaps in a champion with the new
params (same loaded model), a model promotion keeps them, and ``autoopt releases rollback
SYMBOL --params`` puts the previous ones back in the running watcher. A thread reading
``watcher.current`` all along never sees a params/release pair that was never current together.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from autoopt.cli import app
from autoopt.client import ModelWatcher
from autoopt.events import ModelPromoted, ModelReleased
from autoopt.log import EventLog
from autoopt.plugins import load_plugins
from autoopt.registry import ModelRegistry, manifest_bytes, sha256_bytes
from autoopt.strategy.params import StrategyParams
from autoopt.strategy.release import release_params

A = StrategyParams(entry_threshold=0.55, stop_loss_atr=2.0)
B = StrategyParams(entry_threshold=0.6, vol_target=0.2, max_leverage=2.0)


async def _release_model(registry: ModelRegistry, event_log: EventLog, seed: int) -> str:
    """A real (tiny) LightGBM release of GOOG, recorded and promoted."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + rng.normal(scale=0.5, size=300) > 0).astype(np.int8)
    predictor = load_plugins().trainer("lgbm").fit(
        X, y, {"num_leaves": 7, "num_boost_round": 10}, ("f0", "f1", "f2"), seed=seed)
    manifest = registry.save("GOOG", predictor.to_files(), model_type="lightgbm",
                             created_at=1_700_000_000_000_000_000 + seed,
                             features=("f0", "f1", "f2"), data_range=(0, 300))
    await event_log.append(ModelReleased.new(
        symbol="GOOG", release_id=manifest.release_id, model_type=manifest.model_type,
        sha256=manifest.sha256, uri="", manifest_sha256=sha256_bytes(manifest_bytes(manifest))))
    await event_log.append(ModelPromoted.new(symbol="GOOG", release_id=manifest.release_id))
    return manifest.release_id


async def test_champion_params_follow_a_release_and_a_cli_rollback(
        event_log: EventLog, nats_server: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    registry = ModelRegistry(data)
    first = await _release_model(registry, event_log, 1)
    m1, _ = await release_params(registry, event_log, "GOOG", A, data_range=(1, 2))
    watcher = ModelWatcher("GOOG", log=event_log, registry=registry, plugins=load_plugins(),
                           follow_params=True)
    seen: set[tuple[str, StrategyParams | None]] = set()
    stop = threading.Event()

    def reader() -> None:  # another thread, no lock: each read must be a whole pair
        while not stop.is_set():
            champion = watcher.current
            if champion is not None:
                seen.add((champion.params_release_id, champion.params))
            time.sleep(0.0002)

    try:
        champion = await watcher.start()
        assert champion is not None and champion.release_id == first
        assert (champion.params, champion.params_release_id) == (A, m1.release_id)
        assert watcher.params == A
        thread = threading.Thread(target=reader)
        thread.start()

        m2, _ = await release_params(registry, event_log, "GOOG", B, data_range=(1, 3))
        assert await watcher.wait_for_params(m2.release_id, timeout=10) == B
        now = watcher.current
        assert now is not None and now.params == B and now.params_release_id == m2.release_id
        assert now.predictor is champion.predictor  # the model was not reloaded
        assert champion.params == A  # a champion already read stays one consistent snapshot

        second = await _release_model(registry, event_log, 2)
        promoted = await watcher.wait_for(second, timeout=20)
        assert promoted.params == B and promoted.params_release_id == m2.release_id

        cfg = tmp_path / "autoopt.toml"
        cfg.write_text(f'data_dir = "{data}"\n[nats]\nurls = ["{nats_server}"]\n')
        res = await asyncio.to_thread(CliRunner().invoke, app, [
            "--config", str(cfg), "releases", "rollback", "GOOG", "--params"])
        assert res.exit_code == 0, res.output
        assert await watcher.wait_for_params(m1.release_id, timeout=10) == A
        back = watcher.current
        assert back is not None and back.release_id == second
        assert (back.params, back.params_release_id) == (A, m1.release_id)
    finally:
        stop.set()
        if "thread" in locals():
            thread.join(timeout=10)
        await watcher.close()
    assert seen and seen <= {(m1.release_id, A), (m2.release_id, B)}
