"""The service's re-tune after a retrain (``[risk] retune = "with_retrain"``): tuned on the bars
the log holds, gated, recorded once per decision (a redelivered job adds nothing), off by
default, and a failure is an ErrorRaised that never fails the retrain job."""

from __future__ import annotations

from pathlib import Path

import msgspec

from autoopt import events as ev
from autoopt.config import Config
from autoopt.pipeline.ingest import ingest_bars
from autoopt.registry import ModelRegistry
from autoopt.runtime import open_plugins
from autoopt.strategy.service import maybe_retune
from autoopt.subjects import subject_filter_for_type
from autoopt.synthetic import planted_bars


def _config(tmp_path: Path, retune: str) -> Config:
    c = Config(data_dir=str(tmp_path))
    return msgspec.structs.replace(c, risk=msgspec.structs.replace(
        c.risk, retune=retune, trials=10, outer_folds=2))


async def _count(event_log, cls) -> list:  # type: ignore[no-untyped-def]
    return [e async for e in event_log.replay(subject_filter_for_type(cls))]


async def test_retune_after_retrain_is_gated_and_recorded_once(event_log, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path, "with_retrain")
    await ingest_bars(event_log, "EDGE", "1d", planted_bars(7, "daily", 0.7, n=600))
    decision = ev.DecisionMade.new(symbol="EDGE", kind="retrain", reason="schedule")
    registry = ModelRegistry(tmp_path)
    plugins = open_plugins(config)
    out = await maybe_retune(config, plugins, registry, event_log, decision)
    assert out is not None and out.verdict.reasons
    assert out.result.n_trials == 10 * 3
    params = await _count(event_log, ev.RiskParamsUpdated)
    assert len(params) == (1 if out.verdict.passed else 0)
    if params:
        assert params[0].causation_id == decision.event_id
    ledger = await _count(event_log, ev.TrialLedgered)
    again = await maybe_retune(config, plugins, registry, event_log, decision)  # redelivered
    if out.verdict.passed:
        assert again is None  # released once: the rerun sees its event and stops
    else:
        assert again is not None and not again.verdict.passed
        assert again.prior_trials == out.prior_trials  # its own ledger rows are not counted
    assert len(await _count(event_log, ev.RiskParamsUpdated)) == len(params)
    assert len(ledger) == 30 and len(await _count(event_log, ev.TrialLedgered)) == 30


async def test_retune_is_off_by_default_and_a_failure_is_recorded(event_log, tmp_path) -> None:  # type: ignore[no-untyped-def]
    decision = ev.DecisionMade.new(symbol="NOBARS", kind="retrain", reason="schedule")
    off = Config(data_dir=str(tmp_path))
    assert off.risk.retune == "off"
    assert await maybe_retune(off, None, None, event_log, decision) is None
    config = _config(tmp_path, "with_retrain")
    assert await maybe_retune(config, open_plugins(config), ModelRegistry(tmp_path), event_log,
                              decision) is None
    (err,) = [e for e in await _count(event_log, ev.ErrorRaised) if e.component == "risk-retune"]
    assert "no stored bars" in err.message and err.causation_id == decision.event_id
