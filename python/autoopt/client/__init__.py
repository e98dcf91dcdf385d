"""What a trading engine embeds: `Engine` (send signals, fills, outcomes, metrics, feature
samples, retrain requests; read risk params) and `ModelWatcher` (follow the champion and predict
with it from raw bars: `Champion.predict` / `predict_latest`).

The wire contract behind both is in ``docs/wire.md``, for engines not written in Python.
`Engine` and `SyncEngine` load on first use, so a process that only follows a model imports
nothing it does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autoopt.client.watcher import Champion, LoadedModel, ModelWatcher

if TYPE_CHECKING:
    from autoopt.client.engine import Engine, EngineBackpressure, SyncEngine, rolling_metrics

_LAZY = {
    "Engine": "autoopt.client.engine",
    "EngineBackpressure": "autoopt.client.engine",
    "SyncEngine": "autoopt.client.engine",
    "rolling_metrics": "autoopt.client.engine",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'autoopt.client' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "Champion",
    "Engine",
    "EngineBackpressure",
    "LoadedModel",
    "ModelWatcher",
    "SyncEngine",
    "rolling_metrics",
]
