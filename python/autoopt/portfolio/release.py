"""Releasing portfolio weights: ``weights.json`` in the registry release ``<portfolio>@weights``
(versioned, checksummed, parent = the previous weights) and a `PortfolioWeightsReleased` event;
the engine reads the current weights from the latest event or the registry (`current_weights`).
Same order as params: write, switch ``current``, append; a failed append switches back."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from autoopt.errors import ArtifactError, DataError
from autoopt.events import PortfolioWeightsReleased

ARTIFACT = "weights.json"
MODEL_TYPE = "portfolio_weights"
SUFFIX = "@weights"


def weights_key(portfolio: str) -> str:
    return f"{portfolio}{SUFFIX}"


def _check(weights: dict[str, float]) -> dict[str, float]:
    w = {str(k): float(v) for k, v in weights.items()}
    if len(w) < 2 or any(not (0.0 <= v <= 1.0) for v in w.values()) or abs(sum(w.values()) - 1) > 1e-9:
        raise DataError(f"portfolio weights must be >= 2 assets in [0, 1] summing to 1, got {w}")
    return w


def current_weights(registry: Any, portfolio: str) -> dict[str, float] | None:
    key = weights_key(portfolio)
    rid = registry.current(key)
    if rid is None:
        return None
    _, files = registry.load(key, rid)
    if ARTIFACT not in files:
        raise ArtifactError(f"{key}/{rid}: release has no {ARTIFACT}")
    return _check(msgspec.json.decode(files[ARTIFACT]))


async def latest_weights(event_log: Any, portfolio: str) -> dict[str, float] | None:
    """The weights of the portfolio's latest `PortfolioWeightsReleased` in the log (what an
    engine trades; None before the first release)."""
    from autoopt.subjects import subject_filter_for_type

    latest = None
    async for e in event_log.replay(subject_filter_for_type(PortfolioWeightsReleased, portfolio)):
        if isinstance(e, PortfolioWeightsReleased):
            latest = e
    return dict(latest.weights) if latest is not None else None


async def release_weights(registry: Any, event_log: Any, portfolio: str,
                          weights: dict[str, float], *, method: str, data_range: tuple[int, int],
                          metrics: dict[str, float] | None = None, reason: str = "",
                          ) -> tuple[Any, PortfolioWeightsReleased]:
    w = _check(weights)
    key = weights_key(portfolio)
    previous = current_weights(registry, portfolio) or {}
    clean = {k: float(v) for k, v in (metrics or {}).items() if v == v and abs(v) != float("inf")}
    manifest = registry.save(key, {ARTIFACT: msgspec.json.encode(w, order="sorted")},
                             model_type=MODEL_TYPE, trainer=method, created_at=time.time_ns(),
                             params={"method": method, "weights": w}, metrics=clean,
                             data_range=data_range, features=sorted(w))
    event = PortfolioWeightsReleased.new(portfolio=portfolio, weights=w, method=method,
                                         previous=previous, release_id=manifest.release_id,
                                         sha256=manifest.sha256, metrics=clean, reason=reason)
    frm = registry.current(key)
    registry.set_current(key, manifest.release_id)
    try:
        await event_log.append(event)
    except BaseException:
        if frm is not None:
            registry.set_current(key, frm)
        raise
    return manifest, event


__all__ = ["ARTIFACT", "MODEL_TYPE", "current_weights", "latest_weights", "release_weights",
           "weights_key"]
