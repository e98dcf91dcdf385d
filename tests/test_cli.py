"""The `autoopt` command line, run as a real process against a real embedded nats-server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoopt.config import load_config
from autoopt.events import MetricsReported
from autoopt.runtime import open_event_log


def autoopt(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "AUTOOPT_DATA_DIR": str(data_dir), "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "autoopt.cli", *args],
        capture_output=True, text=True, env=full_env, timeout=120,
    )


@pytest.fixture
def data_dir(tmp_path: Path):
    path = tmp_path / "data"
    yield path
    autoopt(path, "server", "stop")


def test_version_and_help(data_dir: Path) -> None:
    out = autoopt(data_dir, "version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("autoopt ")
    helped = autoopt(data_dir, "--help")
    for verb in ("demo", "log", "server", "plugins", "version"):
        assert verb in helped.stdout


def test_plugins_lists_builtins(data_dir: Path) -> None:
    out = autoopt(data_dir, "plugins")
    assert out.returncode == 0, out.stderr
    assert "builtin-sources" in out.stdout
    assert "autoopt_register_data_sources" in out.stdout


def test_bad_config_exits_with_named_key(data_dir: Path) -> None:
    out = autoopt(data_dir, "config", env={"AUTOOPT_PIPELINE__TRIALS": "zero"})
    assert out.returncode == 2
    assert "pipeline.trials" in out.stderr


def test_server_start_status_stop(data_dir: Path) -> None:
    started = autoopt(data_dir, "server", "start")
    assert started.returncode == 0, started.stderr
    assert "nats://127.0.0.1:" in started.stdout
    status = autoopt(data_dir, "server", "status")
    assert status.returncode == 0 and "running" in status.stdout
    stopped = autoopt(data_dir, "server", "stop")
    assert "stopped" in stopped.stdout
    assert autoopt(data_dir, "server", "status").returncode == 1


def test_log_info_and_replay_show_appended_events(data_dir: Path) -> None:
    assert autoopt(data_dir, "server", "start").returncode == 0
    config = load_config(environ={"AUTOOPT_DATA_DIR": str(data_dir)})

    async def append() -> None:
        log = await open_event_log(config)
        try:
            for i in range(3):
                await log.append(
                    MetricsReported.new(symbol="GOOG", window="1d", metrics={"accuracy": 0.5 + i / 10})
                )
        finally:
            await log.close()

    asyncio.run(append())
    info = autoopt(data_dir, "log", "info")
    assert info.returncode == 0, info.stderr
    metrics_row = next(line for line in info.stdout.splitlines() if "METRICS" in line)
    assert " 3 " in metrics_row
    replay = autoopt(data_dir, "log", "replay", "--subject", "METRICS", "--from", "2", "--to", "3")
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.count("metrics.reported") == 2
    assert '"accuracy":0.6' in replay.stdout and '"accuracy":0.7' in replay.stdout
    assert '"accuracy":0.5' not in replay.stdout  # sequence 1 is outside --from 2
    bad = autoopt(data_dir, "log", "replay", "--from", "yesterday")
    assert bad.returncode == 2 and "--from" in bad.stderr


def test_log_tail_follows_new_events(data_dir: Path) -> None:
    assert autoopt(data_dir, "server", "start").returncode == 0
    env = {**os.environ, "AUTOOPT_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    tail = subprocess.Popen(
        [sys.executable, "-m", "autoopt.cli", "log", "tail", "--subject", "autoopt.metrics.>",
         "--count", "2", "--timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    config = load_config(environ={"AUTOOPT_DATA_DIR": str(data_dir)})

    async def append_until_seen() -> None:
        log = await open_event_log(config)
        try:
            # the tail process subscribes asynchronously; keep appending until it has seen two
            for i in range(200):
                await log.append(MetricsReported.new(symbol="EURUSD", window="1h", metrics={"sharpe": float(i)}))
                if tail.poll() is not None:
                    return
                await asyncio.sleep(0.1)
        finally:
            await log.close()

    asyncio.run(append_until_seen())
    out, err = tail.communicate(timeout=60)
    assert tail.returncode == 0, err
    assert out.count("metrics.reported") == 2
    assert "EURUSD" in out
