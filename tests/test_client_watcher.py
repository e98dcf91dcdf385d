"""ModelWatcher: follows promotions and rollbacks on a real server, refuses tampered artifacts
and releases the log never recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from autoopt.client import ModelWatcher
from autoopt.events import ErrorRaised, ModelPromoted, ModelReleased, ModelRolledBack
from autoopt.log import EventLog
from autoopt.plugins import load_plugins
from autoopt.registry import ModelRegistry, manifest_bytes, sha256_bytes
from autoopt.subjects import subject_filter_for_type

FEATURES = ("f0", "f1", "f2")


async def _release(
    registry: ModelRegistry, event_log: EventLog, seed: int, parent: str | None = None
) -> str:
    """Train a real (tiny) LightGBM model, register it and record its ModelReleased; returns the
    release id. Its manifest has no trainer id, like releases written before it was recorded:
    model type "lightgbm" must still resolve to the "lgbm" trainer."""
    trainer = load_plugins().trainer("lgbm")
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] * seed + rng.normal(scale=0.5, size=400) > 0).astype(np.int8)
    predictor = trainer.fit(X, y, {"num_leaves": 7, "num_boost_round": 20}, FEATURES, seed=seed)
    manifest = registry.save(
        "GOOG",
        predictor.to_files(),
        model_type="lightgbm",
        created_at=1_700_000_000_000_000_000 + seed,
        features=FEATURES,
        data_range=(0, 400),
        parent_release=parent,
    )
    await event_log.append(ModelReleased.new(
        symbol="GOOG", release_id=manifest.release_id, model_type=manifest.model_type,
        sha256=manifest.sha256, uri="", manifest_sha256=sha256_bytes(manifest_bytes(manifest))))
    return manifest.release_id


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path)


async def test_watcher_swaps_on_promotion_and_rollback(event_log: EventLog, registry: ModelRegistry) -> None:
    first = await _release(registry, event_log, 1)
    second = await _release(registry, event_log, 2, parent=first)
    await event_log.append(ModelPromoted.new(symbol="GOOG", release_id=first))
    swaps: list[tuple[str, str | None]] = []

    def on_swap(new, old) -> None:
        swaps.append((new.release_id, old.release_id if old else None))

    watcher = ModelWatcher("GOOG", log=event_log, registry=registry, plugins=load_plugins(), on_swap=on_swap)
    try:
        loaded = await watcher.start()
        assert loaded is not None and loaded.release_id == first  # found in the log's history
        X = np.random.default_rng(9).normal(size=(50, 3))
        _, files = registry.load("GOOG", first)
        expected_first = load_plugins().trainer("lgbm").load(files).predict_proba(X)
        np.testing.assert_array_equal(watcher.predict_proba(X), expected_first)
        assert watcher.current is not None and watcher.current.lookback == 1  # a row model

        await event_log.append(ModelPromoted.new(symbol="GOOG", release_id=second, previous_release_id=first))
        await watcher.wait_for(second, timeout=20)
        assert not np.array_equal(watcher.predict_proba(X), expected_first)

        await event_log.append(ModelRolledBack.new(symbol="GOOG", release_id=first, from_release_id=second))
        await watcher.wait_for(first, timeout=20)
        np.testing.assert_array_equal(watcher.predict_proba(X), expected_first)
        assert swaps == [(first, None), (second, first), (first, second)]
    finally:
        await watcher.close()


async def test_watcher_refuses_tampered_artifact(event_log: EventLog, registry: ModelRegistry) -> None:
    good = await _release(registry, event_log, 3)
    bad = await _release(registry, event_log, 4, parent=good)
    model_file = next(p for p in registry.release_dir("GOOG", bad).iterdir() if p.name != "manifest.json")
    model_file.write_bytes(model_file.read_bytes().replace(b"num_leaves", b"num_leafs", 1))
    await event_log.append(ModelPromoted.new(symbol="GOOG", release_id=good))
    errors: list[Exception] = []
    watcher = ModelWatcher(
        "GOOG", log=event_log, registry=registry, plugins=load_plugins(), on_error=lambda exc, ev: errors.append(exc)
    )
    try:
        await watcher.start()
        await event_log.append(ModelPromoted.new(symbol="GOOG", release_id=bad, previous_release_id=good))
        for _ in range(200):
            if errors:
                break
            await asyncio.sleep(0.05)
        assert errors and "SHA-256 mismatch" in str(errors[0])
        assert watcher.current is not None and watcher.current.release_id == good  # still serving
        recorded = [e async for e in event_log.replay(subject_filter_for_type(ErrorRaised, "model-watcher"))]
        assert len(recorded) == 1 and recorded[0].details["release_id"] == bad
    finally:
        await watcher.close()


async def test_watcher_refuses_a_release_the_log_never_recorded(
    event_log: EventLog, registry: ModelRegistry
) -> None:
    good = await _release(registry, event_log, 5)
    await event_log.append(ModelPromoted.new(symbol="GOOG", release_id=good))
    # a complete, self-consistent release dir that no ModelReleased names
    trainer = load_plugins().trainer("lgbm")
    rng = np.random.default_rng(6)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] > 0).astype(np.int8)
    stray = registry.save(
        "GOOG", trainer.fit(X, y, {"num_boost_round": 10}, FEATURES).to_files(),
        model_type="lightgbm", trainer="lgbm", created_at=7, features=FEATURES,
        data_range=(0, 300), parent_release=good,
    ).release_id
    errors: list[Exception] = []
    watcher = ModelWatcher(
        "GOOG", log=event_log, registry=registry, plugins=load_plugins(),
        on_error=lambda exc, ev: errors.append(exc),
    )
    try:
        await watcher.start()
        await event_log.append(ModelPromoted.new(symbol="GOOG", release_id=stray))
        for _ in range(200):
            if errors:
                break
            await asyncio.sleep(0.05)
        assert errors and "has no ModelReleased in the log" in str(errors[0])
        assert watcher.current is not None and watcher.current.release_id == good
    finally:
        await watcher.close()
