"""Resumable releases: a real `autoopt retrain` is SIGKILLed right after each step that follows a
passing verdict (``AUTOOPT_FAULT_AT``), rerun, and the release is completed exactly once: one
release dir, ``current`` on it, one ModelReleased and one ModelPromoted in the log."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
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
        "max_pbo = 1.0\nholdout_min_sharpe = -inf\n"
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


SERVICE_CONFIG = """
symbols = ["GOOG"]
[pipeline]
models = ["lgbm"]
trials = 3
threads = 1
pruning = false
[pipeline.gate]
margin = 0.0
dsr_threshold = 0.0
min_trades = 0
max_pbo = 1.0
holdout_min_sharpe = -inf
[policy]
schedule = "off"
cooldown_s = 0
[policy.drift]
enabled = false
[service]
ack_wait_s = 3
http_port = 0
max_job_age_s = 0
"""


async def _ingest_and_request(config_path: Path, env: dict[str, str]) -> None:
    from autoopt.config import load_config
    from autoopt.events import RetrainRequested
    from autoopt.pipeline.retrain import load_bars
    from autoopt.runtime import open_event_log, open_plugins

    config = load_config(config_path, environ=env)
    log = await open_event_log(config)
    try:
        source = open_plugins(config).data_source_for("bundled:GOOG")
        await load_bars(source, "bundled:GOOG", ["GOOG"], log, batch_rows=1000)
        await log.append(RetrainRequested.new(symbol="GOOG", reason="manual", requested_by="test"))
    finally:
        await log.close()


def test_serve_killed_mid_release_completes_it_on_restart(tmp_path: Path, nats_server: str) -> None:
    config_path = tmp_path / "autoopt.toml"
    config_path.write_text(SERVICE_CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOOPT_")}
    env |= {"AUTOOPT_CONFIG": str(config_path), "AUTOOPT_DATA_DIR": str(tmp_path / "data"),
            "AUTOOPT_NATS_URL": nats_server}
    asyncio.run(_ingest_and_request(config_path, env))
    cmd = [sys.executable, "-m", "autoopt.cli", "serve"]
    with (tmp_path / "first.log").open("w") as out:
        first = subprocess.run(cmd, env=env | {faults.ENV: "after_released"}, stdout=out,
                               stderr=subprocess.STDOUT, timeout=300)
    assert first.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-3000:]
    registry = ModelRegistry(tmp_path / "data")
    assert registry.current("GOOG") is None  # killed before the switch

    with (tmp_path / "second.log").open("w") as out:
        second = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):  # the redelivered job (after ack_wait) completes the release
            events = asyncio.run(_model_events(nats_server))
            if any(isinstance(e, ModelPromoted) for e in events):
                break
            assert second.poll() is None, (tmp_path / "second.log").read_text()[-3000:]
            time.sleep(0.3)
        time.sleep(4)  # longer than ack_wait: a duplicate run would have appended by now
        events = asyncio.run(_model_events(nats_server))
    finally:
        second.kill()
        second.wait(timeout=30)
    released = [e for e in events if isinstance(e, ModelReleased)]
    promoted = [e for e in events if isinstance(e, ModelPromoted)]
    verdicts = [e for e in events if isinstance(e, ValidationVerdict)]
    assert len(verdicts) == 1 and verdicts[0].passed
    assert [e.release_id for e in released] == [verdicts[0].challenger]
    assert [e.release_id for e in promoted] == [verdicts[0].challenger]
    assert registry.current("GOOG") == verdicts[0].challenger
    assert [e.release_id for e in registry.entries("GOOG")] == [verdicts[0].challenger]
