"""Strategy params released like a model: registry release + RiskParamsUpdated, a running
ParamsWatcher swaps without a restart, rollback restores the previous params, tampering is
refused, and the CLI's rollback does the same."""

from __future__ import annotations

import asyncio
import json

import pytest

from autoopt.errors import ArtifactError
from autoopt.events import ErrorRaised, RiskParamsUpdated
from autoopt.registry import ModelRegistry
from autoopt.strategy.follow import ParamsWatcher
from autoopt.strategy.params import StrategyParams
from autoopt.strategy.release import (
    current_params,
    release_params,
    rollback_params,
    strategy_key,
)
from autoopt.subjects import subject_filter_for_type

A = StrategyParams(entry_threshold=0.55, stop_loss_atr=2.0)
B = StrategyParams(entry_threshold=0.6, vol_target=0.2, max_leverage=2.0)


async def _events(event_log) -> list[RiskParamsUpdated]:  # type: ignore[no-untyped-def]
    return [e async for e in event_log.replay(subject_filter_for_type(RiskParamsUpdated, "SYN"))]


async def test_release_follow_and_rollback_in_a_running_watcher(event_log, tmp_path) -> None:  # type: ignore[no-untyped-def]
    registry = ModelRegistry(tmp_path)
    m1, e1 = await release_params(registry, event_log, "SYN", A, data_range=(1, 2),
                                  metrics={"sharpe": 1.0}, reason="gate passed",
                                  evidence={"rule": "highest Sharpe", "front": [{"sharpe": 1.0}]})
    _, files = registry.load(strategy_key("SYN"), m1.release_id)
    assert json.loads(files["evidence.json"])["rule"] == "highest Sharpe"  # why, kept with it
    watcher = ParamsWatcher("SYN", log=event_log, registry=registry)
    assert await watcher.start() == A  # replayed from the log at start
    m2, e2 = await release_params(registry, event_log, "SYN", B, data_range=(1, 3))
    assert await watcher.wait_for(m2.release_id, timeout=10) == B  # followed live
    assert e2.previous == A.as_dict() and e2.sha256 == m2.sha256
    assert registry.manifest(strategy_key("SYN"), m2.release_id).parent_release == m1.release_id

    frm, to, ev = await rollback_params(registry, event_log, "SYN", reason="test")
    assert (frm, to) == (m2.release_id, m1.release_id)
    assert await watcher.wait_for(m1.release_id, timeout=10) == A  # swapped back, no restart
    assert current_params(registry, "SYN") == A
    assert ev.params == A.as_dict() and ev.previous == B.as_dict() and "rollback" in ev.reason
    assert [e.release_id for e in await _events(event_log)] == [m1.release_id, m2.release_id,
                                                               m1.release_id]
    await watcher.stop()


async def test_a_tampered_params_release_is_refused_and_the_old_params_keep_trading(
        event_log, tmp_path) -> None:  # type: ignore[no-untyped-def]
    registry = ModelRegistry(tmp_path)
    m1, _ = await release_params(registry, event_log, "SYN", A, data_range=(1, 2))
    watcher = ParamsWatcher("SYN", log=event_log, registry=registry)
    await watcher.start()
    forged = RiskParamsUpdated.new(symbol="SYN", params=B.as_dict(), release_id=m1.release_id,
                                   sha256=m1.sha256)
    await event_log.append(forged)
    for _ in range(100):
        if watcher.errors:
            break
        await asyncio.sleep(0.05)
    assert watcher.current == A
    assert "holds other params" in str(watcher.errors[0][1])
    errors = [e async for e in event_log.replay(subject_filter_for_type(ErrorRaised))]
    assert [e.component for e in errors] == ["params-watcher"]
    assert errors[0].causation_id == forged.event_id
    await watcher.stop()


async def test_rollback_without_a_parent_is_one_line(event_log, tmp_path) -> None:  # type: ignore[no-untyped-def]
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ArtifactError, match="no released strategy params"):
        await rollback_params(registry, event_log, "SYN")
    await release_params(registry, event_log, "SYN", A, data_range=(1, 2))
    with pytest.raises(ArtifactError, match="has no parent"):
        await rollback_params(registry, event_log, "SYN")
