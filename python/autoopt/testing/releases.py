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
                       parent: str | None = None) -> str:
    """Fit, save and record a 20-tree LightGBM release of ``symbol``; returns its release id."""
    from autoopt.plugins import load_plugins

    trainer = load_plugins().trainer("lgbm")
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] * seed + rng.normal(scale=0.5, size=400) > 0).astype(np.int8)
    predictor = trainer.fit(X, y, {"num_leaves": 7, "num_boost_round": 20}, FEATURES, seed=seed)
    manifest = registry.save(
        symbol, predictor.to_files(), model_type="lightgbm", trainer="lgbm",
        created_at=1_700_000_000_000_000_000 + seed, features=FEATURES, data_range=(0, 400),
        parent_release=parent,
    )
    await event_log.append(ModelReleased.new(
        symbol=symbol, release_id=manifest.release_id, model_type=manifest.model_type,
        sha256=manifest.sha256, uri="", trainer="lgbm",
        manifest_sha256=sha256_bytes(manifest_bytes(manifest))))
    return manifest.release_id


__all__ = ["FEATURES", "tiny_release"]
