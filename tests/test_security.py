"""Secrets are never printed (config, errors, logs) and the compose deployment is closed by
default: NATS requires credentials from the environment and every port binds to loopback."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autoopt.errors import EventLogError
from autoopt.log import EventLog, NatsSettings
from autoopt.redact import mask_settings, redact

SECRET = "Hunter2-s3cr3t"
SEED = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU"
DOCKER = Path(__file__).parent.parent / "docker"


def autoopt(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTOOPT_")}
    full_env = {**clean, "AUTOOPT_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200", **env}
    return subprocess.run(
        [sys.executable, "-m", "autoopt.cli", *args],
        capture_output=True, text=True, env=full_env, timeout=120,
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_redact_scrubs_url_user_info_seeds_and_keys() -> None:
    text = (
        f"at nats://svc:{SECRET}@h:4222, tls://{SECRET}@h2:4222, seed {SEED}, "
        "-----BEGIN NATS USER JWT-----\neyJ0eXAi\n------END NATS USER JWT------"
    )
    clean = redact(text)
    assert SECRET not in clean and SEED not in clean and "eyJ0eXAi" not in clean
    assert "nats://svc:***@h:4222" in clean and "tls://***@h2:4222" in clean
    assert redact("http://127.0.0.1:8222/healthz") == "http://127.0.0.1:8222/healthz"
    masked = mask_settings({"nats": {"password": SECRET, "token": None, "user": "svc",
                                     "tls_key": "/etc/key.pem"}})
    assert masked == {"nats": {"password": "***", "token": None, "user": "svc",
                               "tls_key": "/etc/key.pem"}}


@pytest.mark.parametrize("env", [
    {"AUTOOPT_NATS__USER": "svc", "AUTOOPT_NATS__PASSWORD": SECRET,
     "AUTOOPT_NATS_URL": f"nats://svc:{SECRET}@nats:4222"},
    {"AUTOOPT_NATS__TOKEN": SECRET, "AUTOOPT_PIPELINE__OPTUNA_STORAGE":
     f"postgresql://optuna:{SECRET}@db/optuna"},
    {"AUTOOPT_NATS__NKEYS_SEED": SEED},
])
def test_config_command_masks_secrets(tmp_path: Path, env: dict[str, str]) -> None:
    secret = env.get("AUTOOPT_NATS__NKEYS_SEED", SECRET)
    shown = autoopt(tmp_path, "config", env=env)
    as_toml = autoopt(tmp_path, "config", "--toml", env=env)
    for out in (shown, as_toml):
        assert out.returncode == 0, out.stderr
        assert secret not in out.stdout + out.stderr
        assert "***" in out.stdout
    nats = json.loads(shown.stdout)["nats"]
    assert "***" in (nats["password"], nats["token"], nats["nkeys_seed"])
    # an RNG seed is not a secret: it is shown as it is
    assert json.loads(shown.stdout)["pipeline"]["seed"] == 42
    assert "\nseed = 42\n" in as_toml.stdout


def test_connect_error_and_logs_never_print_the_url_password(tmp_path: Path) -> None:
    url = f"nats://svc:{SECRET}@127.0.0.1:{_closed_port()}"
    out = autoopt(tmp_path, "--verbose", "log", "info", env={
        "AUTOOPT_NATS_URL": url, "AUTOOPT_NATS__CONNECT_TIMEOUT_S": "3",
        "AUTOOPT_NATS__RECONNECT_WAIT_S": "0.1",
    })
    assert out.returncode == 2
    assert SECRET not in out.stdout + out.stderr
    error = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and "could not connect to NATS at nats://svc:***@127.0.0.1" in error[0]
    assert "Traceback" not in out.stderr


async def test_event_log_connect_logs_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    url = f"nats://svc:{SECRET}@127.0.0.1:{_closed_port()}"
    caplog.set_level(logging.DEBUG)
    settings = NatsSettings(urls=[url], connect_timeout_s=2.0, reconnect_wait_s=0.1)
    with pytest.raises(EventLogError) as err:
        await EventLog.connect(settings)
    assert SECRET not in str(err.value) and "svc:***@" in str(err.value)
    assert "connect attempt failed" in caplog.text  # the attempts were logged...
    assert SECRET not in caplog.text  # ...without the password


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR:-default}`` / ``${VAR:?error}`` substitution (what `docker compose`
    does before it reads the file)."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise ValueError(f"{name}: {arg}")
        return arg or ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, text)


def _published_hosts(compose: dict) -> list[tuple[str, str]]:
    hosts = []
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            parts = str(port).split(":")
            assert len(parts) == 3, f"{name}: port {port!r} names no host address"
            hosts.append((name, parts[0]))
    return hosts


def test_compose_binds_loopback_and_requires_nats_auth() -> None:
    raw = (DOCKER / "compose.yaml").read_text()
    creds = {"AUTOOPT_NATS_USER": "svc", "AUTOOPT_NATS_PASSWORD": SECRET}
    compose = yaml.safe_load(_interpolate(raw, creds))
    hosts = _published_hosts(compose)
    assert {name for name, _ in hosts} >= {"nats", "autoopt", "prometheus"}
    assert all(host == "127.0.0.1" for _, host in hosts), hosts
    opened = yaml.safe_load(_interpolate(raw, {**creds, "AUTOOPT_BIND": "0.0.0.0"}))
    assert {host for _, host in _published_hosts(opened)} == {"0.0.0.0"}  # only when told
    for missing in ("AUTOOPT_NATS_USER", "AUTOOPT_NATS_PASSWORD"):  # no default credentials
        with pytest.raises(ValueError, match=missing):
            _interpolate(raw, {k: v for k, v in creds.items() if k != missing})
    nats, service = compose["services"]["nats"], compose["services"]["autoopt"]
    assert nats["command"] == ["-c", "/etc/nats/nats.conf"]
    assert "./nats.conf:/etc/nats/nats.conf:ro" in nats["volumes"]
    assert nats["environment"] == creds
    conf = (DOCKER / "nats.conf").read_text()
    auth = re.search(r"authorization\s*\{([^}]*)\}", conf)
    assert auth is not None
    assert "user: $AUTOOPT_NATS_USER" in auth.group(1)
    assert "password: $AUTOOPT_NATS_PASSWORD" in auth.group(1)
    assert service["environment"]["AUTOOPT_NATS__USER"] == "svc"
    assert service["environment"]["AUTOOPT_NATS__PASSWORD"] == SECRET
