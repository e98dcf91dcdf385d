"""Releasing strategy parameters like a model: versioned and checksummed in the registry, a
`RiskParamsUpdated` appended, rolled back with one call.

Why through the registry's public API: params are an artifact of their own, ``strategy.json``
in the release ``<symbol>@strategy`` (`strategy_key`), so every registry backend (disk, NATS)
versions, checksums, lists and switches them exactly as it does models; ``autoopt releases
list`` shows them next to the symbol's models. A params release records the model release it
was tuned and judged with (``model_release_id``: the symbol's current model), whether it went
out with a new model or alone.

Order of a release (and of a rollback): write the artifact, switch ``current``, append
`RiskParamsUpdated` carrying the params, the previous ones, the release id and its SHA-256. If
the append fails, ``current`` is switched back: no switch without its event. Followers
(`autoopt.strategy.follow.ParamsWatcher`, the engine client's ``current_params``) read the event.
"""

from __future__ import annotations

from typing import Any

from autoopt.clock import Clock
from autoopt.errors import ArtifactError
from autoopt.events import Event, RiskParamsUpdated
from autoopt.registry import Manifest
from autoopt.strategy.params import ARTIFACT, MODEL_TYPE, StrategyParams

SUFFIX = "@strategy"
EVIDENCE = "evidence.json"


def strategy_key(symbol: str) -> str:
    """The registry name of a symbol's strategy-parameter releases."""
    return f"{symbol}{SUFFIX}"


def load_params(registry: Any, symbol: str, release_id: str | None = None
                ) -> tuple[StrategyParams, Manifest] | None:
    """A params release (default: current), verified by the registry; None when none exists."""
    key = strategy_key(symbol)
    rid = release_id if release_id is not None else registry.current(key)
    if rid is None:
        return None
    manifest, files = registry.load(key, rid)
    if ARTIFACT not in files:
        raise ArtifactError(f"{key}/{rid}: release has no {ARTIFACT}")
    return StrategyParams.from_json(files[ARTIFACT]), manifest


def current_params(registry: Any, symbol: str) -> StrategyParams | None:
    """The symbol's current released params (None: never released)."""
    found = load_params(registry, symbol)
    return found[0] if found else None


async def _switch_and_record(registry: Any, event_log: Any, key: str, frm: str | None, to: str,
                             event: RiskParamsUpdated) -> None:
    registry.set_current(key, to)
    try:
        await event_log.append(event)
    except BaseException:
        if frm is not None:
            registry.set_current(key, frm)  # no switch without its event
        raise


async def release_params(
    registry: Any,
    event_log: Any,
    symbol: str,
    params: StrategyParams,
    *,
    data_range: tuple[int, int],
    metrics: dict[str, float] | None = None,
    reason: str = "",
    tuner: str = "nsga2",
    clock: Clock | None = None,
    cause: Event | None = None,
    evidence: dict[str, Any] | None = None,
) -> tuple[Manifest, RiskParamsUpdated]:
    """Release ``params`` for ``symbol`` (params-only; tied to the current model release).
    With a ``cause`` (the service's retrain decision) the event id derives from it, so a
    redelivered job records the release once. ``evidence`` (the Pareto front, the rule applied,
    the gate's reasons, the out-of-sample figures) is stored beside the params as
    ``evidence.json``: why these were chosen and what they beat, release by release."""
    key = strategy_key(symbol)
    previous = load_params(registry, symbol)
    model_release = registry.current(symbol) or ""
    now = clock.now_ns() if clock is not None else None
    files = {ARTIFACT: params.to_json()}
    if evidence is not None:
        import msgspec

        files[EVIDENCE] = msgspec.json.encode(evidence, order="sorted")
    manifest = registry.save(
        key, files, model_type=MODEL_TYPE, trainer="strategy",
        created_at=now if now is not None else _now_ns(),
        params={**params.as_dict(), "model_release_id": model_release},
        metrics=metrics or {}, data_range=data_range,
    )
    event = RiskParamsUpdated.new(
        clock=clock, cause=cause, step=f"risk-release/{manifest.release_id}" if cause else None,
        symbol=symbol, params=params.as_dict(),
        previous=previous[0].as_dict() if previous else {}, reason=reason, tuner=tuner,
        release_id=manifest.release_id, sha256=manifest.sha256, model_release_id=model_release,
    )
    frm = registry.current(key)
    await _switch_and_record(registry, event_log, key, frm, manifest.release_id, event)
    return manifest, event


async def rollback_params(
    registry: Any, event_log: Any, symbol: str, *, to: str | None = None,
    reason: str = "manual rollback", clock: Clock | None = None,
) -> tuple[str, str, RiskParamsUpdated]:
    """Put the previous params back (the current release's parent, or ``to``); returns (from,
    to, the event appended)."""
    key = strategy_key(symbol)
    frm = registry.current(key)
    if frm is None:
        raise ArtifactError(f"{symbol}: no released strategy params to roll back from")
    target = to if to is not None else registry.manifest(key, frm).parent_release
    if target is None:
        raise ArtifactError(f"{symbol}: params release {frm} has no parent to roll back to")
    old = load_params(registry, symbol, frm)
    new = load_params(registry, symbol, target)
    assert old is not None and new is not None
    params, manifest = new
    event = RiskParamsUpdated.new(
        clock=clock, symbol=symbol, params=params.as_dict(), previous=old[0].as_dict(),
        reason=f"rollback {frm} -> {target}: {reason}", tuner="rollback",
        release_id=target, sha256=manifest.sha256,
        model_release_id=str(manifest.params.get("model_release_id", "")),
    )
    await _switch_and_record(registry, event_log, key, frm, target, event)
    return frm, target, event


def _now_ns() -> int:
    import time

    return time.time_ns()


__all__ = ["EVIDENCE", "SUFFIX", "current_params", "load_params", "release_params", "rollback_params",
           "strategy_key"]
