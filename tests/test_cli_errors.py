"""Bad input ends the real `autoopt` command with one clear line on stderr, exit code 2, and no
traceback (unless ``--debug`` asks for it); list settings read ``A,B`` or JSON from the
environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def autoopt(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTOOPT_")}
    full_env = {**clean, "AUTOOPT_DATA_DIR": str(data_dir), "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "autoopt.cli", *args],
        capture_output=True, text=True, env=full_env, timeout=180, cwd=data_dir.parent,
    )


def one_error_line(out: subprocess.CompletedProcess[str], *expected: str) -> str:
    """The single stderr line of a failed command, checked for exit code 2 and ``expected``."""
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    line = lines[0]
    assert line.startswith("error: ")
    for text in expected:
        assert text in line, line
    return line


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    yield path
    autoopt(path, "server", "stop")


def test_missing_config_file(data_dir: Path) -> None:
    one_error_line(autoopt(data_dir, "--config", "nope.toml", "config"),
                   "config file 'nope.toml' does not exist")


def test_debug_switch_shows_the_traceback(data_dir: Path) -> None:
    for out in (
        autoopt(data_dir, "--debug", "--config", "nope.toml", "config"),
        autoopt(data_dir, "--config", "nope.toml", "config", env={"AUTOOPT_DEBUG": "1"}),
    ):
        assert out.returncode != 0
        assert "Traceback" in out.stderr and "ConfigError" in out.stderr


def test_bad_enum_lists_valid_values_and_suggests_one(data_dir: Path) -> None:
    out = autoopt(data_dir, "config", env={"AUTOOPT_POLICY__CHAMPION_EVENT": "promotd"})
    one_error_line(out, "policy.champion_event", "valid values: promoted, released",
                   "did you mean 'promoted'?")
    out = autoopt(data_dir, "config", env={"AUTOOPT_POLICY__DRIFT__DETECTORS": "psi,adwn"})
    one_error_line(out, "policy.drift.detectors[1]", "did you mean 'adwin'?")


def test_malformed_nats_url(data_dir: Path) -> None:
    out = autoopt(data_dir, "log", "info", env={"AUTOOPT_NATS_URL": "nats//host:4222"})
    one_error_line(out, "nats.urls", "'nats//host:4222' must start with one of nats://")


def test_missing_tls_file(data_dir: Path) -> None:
    out = autoopt(data_dir, "log", "info", env={
        "AUTOOPT_NATS_URL": "tls://127.0.0.1:1", "AUTOOPT_NATS__TLS_CA": str(data_dir / "ca.pem"),
    })
    one_error_line(out, "nats.tls_ca: file", "ca.pem", "does not exist")


def test_unknown_source_scheme_and_missing_source_file(data_dir: Path) -> None:
    out = autoopt(data_dir, "retrain", "--source", "nosuch:x", "-q")
    one_error_line(out, "no data source for scheme 'nosuch'", "known schemes")
    out = autoopt(data_dir, "retrain", "--source", f"file:{data_dir / 'bars.csv'}", "-q")
    one_error_line(out, "bars.csv")


def test_unknown_model_in_config_lists_registered_trainers(data_dir: Path) -> None:
    out = autoopt(data_dir, "serve", env={"AUTOOPT_PIPELINE__MODELS": "lgbm,lgbn"})
    one_error_line(out, "pipeline.models: unknown model 'lgbn'", "registered trainers:", "lgbm",
                   "did you mean 'lgbm'?")


def test_serve_on_a_used_port(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = autoopt(data_dir, "serve", "--port", str(port), "--human-logs")
    one_error_line(out, f"service.http_port: cannot listen on 127.0.0.1:{port}",
                   "address already in use")


def test_second_server_start_reuses_the_running_one(data_dir: Path) -> None:
    first = autoopt(data_dir, "server", "start")
    assert first.returncode == 0, first.stderr
    second = autoopt(data_dir, "server", "start")
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stdout and second.stderr == ""
    url = first.stdout.split(" at ", 1)[1].split()[0]
    assert url in second.stdout


@pytest.mark.parametrize("models", ["lgbm, tft", '["lgbm", "tft"]'])
def test_list_settings_read_commas_or_json_from_the_environment(data_dir: Path, models: str) -> None:
    out = autoopt(data_dir, "config", env={
        "AUTOOPT_PIPELINE__MODELS": models,
        "AUTOOPT_NATS_URL": "nats://a:4222,nats://b:4222",
        "AUTOOPT_POLICY__DRIFT__STREAMS": "outcome",
    })
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["pipeline"]["models"] == ["lgbm", "tft"]
    assert shown["nats"]["urls"] == ["nats://a:4222", "nats://b:4222"]
    assert shown["policy"]["drift"]["streams"] == ["outcome"]
    assert shown["pipeline"]["feature_set"] == "default"  # a plain string stays a string


def test_a_server_without_jetstream_is_named_at_once(tmp_path: Path) -> None:
    """A plain NATS server (no -js) answers every JetStream request with 503: say so at
    connect, in one line, instead of retrying and reporting a bare 503."""
    from autoopt.log.server import find_nats_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([find_nats_server(), "-a", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as c:
                if c.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        out = autoopt(tmp_path, "log", "info", env={"AUTOOPT_NATS_URL": f"nats://127.0.0.1:{port}"})
        line = one_error_line(out, "JetStream disabled", "-js")
        assert out.returncode == 2 and "Traceback" not in out.stderr, line
    finally:
        proc.terminate()
        proc.wait(timeout=10)
