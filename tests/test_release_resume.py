"""Resumable releases: a real `autoopt retrain` is SIGKILLed right after each step that follows a
passing verdict (``AUTOOPT_FAULT_AT``), rerun, and the release is completed exactly once: one
release dir, ``current`` on it, one ModelReleased and one ModelPromoted in the log."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from autoopt import faults
from autoopt.events import (
    Event,
    FeatureBatch,
    ModelPromoted,
    ModelReleased,
    ValidationVerdict,
)
from autoopt.log import EventLog, NatsSettings
from autoopt.registry import ModelRegistry


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "autoopt.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'[nats]\nurls = ["{url}"]\n'
        "[pipeline]\ntrials = 3\npruning = false\n"
        "[pipeline.gate]\nmargin = 0.0\ndsr_threshold = 0.0\nmin_trades = 0\n"
    )
    return path


def _retrain(cfg: Path, fault: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOOPT_")}
    if fault is not None:
        env[faults.ENV] = fault
    return subprocess.run(
        [sys.executable, "-m", "autoopt.cli", "--config", str(cfg), "retrain",
         "--source", "bundled:GOOG", "--symbols", "GOOG", "--quiet"],
        env=env, capture_output=True, text=True, timeout=600,
    )


async def _model_events(url: str) -> list[Event]:
    log = await EventLog.connect(NatsSettings(urls=[url]))
    try:
        return [e for s in ("MODELS", "MARKET") async for e in log.replay(s)]
    finally:
        await log.close()


@pytest.mark.parametrize("step", faults.STEPS)
def test_retrain_killed_after_each_release_step_resumes_exactly_once(
    step: str, tmp_path: Path, nats_server: str
) -> None:
    cfg = _config(tmp_path, nats_server)
    killed = _retrain(cfg, step)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    registry = ModelRegistry(tmp_path / "data")
    before = asyncio.run(_model_events(nats_server))
    assert [e.passed for e in before if isinstance(e, ValidationVerdict)] == [True]

    rerun = _retrain(cfg, None)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr

    entries = registry.entries("GOOG")
    assert [e.problem for e in entries] == [None]
    rid = entries[0].release_id
    assert registry.current("GOOG") == rid
    assert not [p for p in registry.symbol_dir("GOOG").iterdir() if p.name.startswith(".")]
    events = asyncio.run(_model_events(nats_server))
    released = [e for e in events if isinstance(e, ModelReleased)]
    promoted = [e for e in events if isinstance(e, ModelPromoted)]
    references = [e for e in events if isinstance(e, FeatureBatch) and e.release_id == rid]
    assert [e.release_id for e in released] == [rid]
    assert [e.release_id for e in promoted] == [rid]
    assert len(references) == 1
    passed = [e for e in events if isinstance(e, ValidationVerdict) and e.passed]
    assert [v.challenger for v in passed] == [rid]
    assert released[0].causation_id == passed[0].event_id == promoted[0].causation_id
    assert released[0].trainer == "lgbm" and released[0].manifest_sha256
    # the recorded digests are the authority, and the release satisfies them
    registry.load("GOOG", rid, recorded=_recorded(released[0]))


def _recorded(event: ModelReleased):  # noqa: ANN202
    from autoopt.pipeline.release import recorded_of

    return recorded_of(event)
