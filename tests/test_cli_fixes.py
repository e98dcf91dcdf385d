"""Small things a new user hit: ``--config /dev/null`` (and other files that are not regular)
reads or refuses accurately, and ``retrain --via-service`` with no service running fails in one
line after ``--service-wait`` instead of waiting the whole ``--timeout``. (``ab create`` with a
release the registry does not hold: tests/test_ab_cli.py.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from autoopt.config import load_config
from autoopt.errors import ConfigError
from autoopt.events import RetrainRequested
from autoopt.log import EventLog


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
         timeout: float = 180) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTOOPT_")}
    return subprocess.run([sys.executable, "-m", "autoopt.cli", *args], capture_output=True,
                          text=True, env={**clean, "COLUMNS": "250", **(env or {})},
                          timeout=timeout, cwd=cwd)


def _one_error_line(out: subprocess.CompletedProcess[str], *expected: str) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and lines[0].startswith("error: ")
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def test_an_empty_non_regular_config_file_means_the_defaults(tmp_path: Path) -> None:
    assert load_config("/dev/null", environ={"AUTOOPT_DATA_DIR": str(tmp_path)}) == load_config(
        None, environ={"AUTOOPT_DATA_DIR": str(tmp_path)})
    fifo = tmp_path / "config.fifo"  # what `--config <(...)` hands over
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"printf 'symbols = [\"AAPL\"]\\n' > {fifo}"])
    try:
        assert load_config(fifo, environ={"AUTOOPT_DATA_DIR": str(tmp_path)}).symbols == ["AAPL"]
    finally:
        writer.wait(timeout=30)
    out = _cli("--config", "/dev/null", "config", "--toml", env={"AUTOOPT_DATA_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "symbols = []" in out.stdout


def test_a_config_path_that_is_no_file_is_refused_with_the_real_reason(tmp_path: Path) -> None:
    env = {"AUTOOPT_DATA_DIR": str(tmp_path)}
    _one_error_line(_cli("--config", str(tmp_path), "config", env=env),
                    f"config file '{tmp_path}' is a directory, not a TOML file")
    _one_error_line(_cli("--config", str(tmp_path / "nope.toml"), "config", env=env),
                    "nope.toml' does not exist")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"symbols = []\n\xff\xfe")
    _one_error_line(_cli("--config", str(binary), "config", env=env), "is not UTF-8 text")
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(ConfigError, match="is a socket, not a TOML file"):
            load_config(sock_path, environ=env)


def _config(tmp_path: Path, nats_server: str) -> Path:
    path = tmp_path / "autoopt.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[nats]\nurls = ["{nats_server}"]\n')
    return path


async def test_retrain_via_service_without_a_service_fails_in_one_line(
        event_log: EventLog, nats_server: str, tmp_path: Path) -> None:
    cfg_path = _config(tmp_path, nats_server)
    # --timeout is an hour: only the service wait can end this command (the subprocess
    # timeout below is a guard against the old behaviour, not a timing check)
    out = _cli("--config", str(cfg_path), "retrain", "--via-service", "--symbols", "EDGE",
               "--service-wait", "3", timeout=300)
    line = _one_error_line(out, "no service decided the retrain request of EDGE within 3s",
                           "is `autoopt serve` running")
    requests = [e async for e in event_log.replay("autoopt.training.requested.>")
                if isinstance(e, RetrainRequested)]
    assert [r.symbol for r in requests] == ["EDGE"] and requests[0].event_id in line
