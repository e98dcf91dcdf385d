"""Real, tiny releases for tests and benches: a LightGBM model fitted on seeded rows, saved in a
registry and recorded in the log (`ModelReleased`), so promotion, watchers and experiments run on
the genuine article, not on made-up release ids."""

from __future__ import annotations

from typing import Any

import numpy as np

from autoopt.events import ModelReleased
from autoopt.registry import manifest_bytes, sha256_bytes

FEATURES = ("f0", "f1", "f2")


async def tiny_release(registry: Any, event_log: Any, symbol: str, seed: int,
                       parent: str | None = None, *, record: bool = True) -> str:
    """Fit, save and record a 20-tree LightGBM release of ``symbol``; returns its release id.
    ``record=False``: only staged, for a verdict to name (the release steps record it)."""
    from autoopt.plugins import load_plugins

    trainer = load_plugins().trainer("lgbm")
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] * seed + rng.normal(scale=0.5, size=400) > 0).astype(np.int8)
    predictor = trainer.fit(X, y, {"num_leaves": 7, "num_boost_round": 20}, FEATURES, seed=seed)
    kw = dict(model_type="lightgbm", trainer="lgbm", created_at=1_700_000_000_000_000_000 + seed,
              features=FEATURES, data_range=(0, 400), parent_release=parent)
    if not record:
        staged, blobs = registry.prepare(symbol, predictor.to_files(), **kw)
        registry.stage(staged, blobs)
        return staged.release_id
    manifest = registry.save(symbol, predictor.to_files(), **kw)
    await event_log.append(ModelReleased.new(
        symbol=symbol, release_id=manifest.release_id, model_type=manifest.model_type,
        sha256=manifest.sha256, uri="", trainer="lgbm",
        manifest_sha256=sha256_bytes(manifest_bytes(manifest))))
    return manifest.release_id


async def release_model(registry: Any, event_log: Any, symbol: str, X: np.ndarray,
                        y: np.ndarray, names: Any, *, seed: int, recipe: Any = None,
                        record: bool = True) -> Any:
    """Fit a small LightGBM on (X, y) and save it with its feature-set ``recipe``
    (`autoopt.pipeline.recipe.recipe_fields`); recorded in the log unless ``record`` is False
    (then it is only staged, for a verdict to name). Returns its manifest."""
    from autoopt.plugins import load_plugins

    trainer = load_plugins().trainer("lgbm")
    predictor = trainer.fit(np.ascontiguousarray(X), y, {"num_leaves": 15,
                            "num_boost_round": 60, "min_data_in_leaf": 20}, list(names), seed=seed)
    kw = dict(model_type="lightgbm", trainer="lgbm", features=list(names),
              created_at=1_700_000_000_000_000_000 + seed, data_range=(0, len(y)),
              parent_release=None, recipe=recipe)
    if not record:
        manifest, blobs = registry.prepare(symbol, predictor.to_files(), **kw)
        registry.stage(manifest, blobs)
        return manifest
    manifest = registry.save(symbol, predictor.to_files(), **kw)
    await event_log.append(ModelReleased.new(
        symbol=symbol, release_id=manifest.release_id, model_type=manifest.model_type,
        sha256=manifest.sha256, uri="", trainer="lgbm", features=list(names),
        manifest_sha256=sha256_bytes(manifest_bytes(manifest))))
    return manifest


__all__ = ["FEATURES", "release_model", "tiny_release"]
