"""The embedded nats-server: start, reuse across processes, stale state, stop, persistence."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from autoopt import events as ev
from autoopt.errors import ConfigError, EventLogError, ServerError
from autoopt.log import (
    EmbeddedServer,
    EventLog,
    NatsSettings,
    connect_options,
    ensure_server,
    find_nats_server,
    server_status,
    stop_server,
)

# A second autoopt process: uses the data dir's server, reports what it saw, waits for a line on
# stdin (so the test controls how long it stays a user), then closes.
_CHILD = """
import json, sys
from autoopt.log import EmbeddedServer, server_status
server = EmbeddedServer(sys.argv[1])
url = server.start()
print(json.dumps({"url": url, "pid": server_status(sys.argv[1]).pid}), flush=True)
sys.stdin.readline()
print(json.dumps({"stopped": server.close()}), flush=True)
"""


def _child(data_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_finds_the_binary_from_the_wheel_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    path = find_nats_server()
    assert Path(path).name.startswith("nats-server") and os.access(path, os.X_OK)
    monkeypatch.setenv("AUTOOPT_NATS_SERVER", "/nonexistent/nats-server")
    with pytest.raises(ServerError, match="AUTOOPT_NATS_SERVER"):
        find_nats_server()


def test_server_starts_is_reused_by_a_second_process_and_stops(tmp_path: Path) -> None:
    assert not server_status(tmp_path).running
    server = EmbeddedServer(tmp_path)
    url = server.start()
    status = server_status(tmp_path)
    assert status.running and status.url == url and not url.endswith(":4222")
    assert Path(status.store_dir) == tmp_path.resolve() / "nats" / "jetstream"

    child = _child(tmp_path)
    seen = json.loads(child.stdout.readline())
    assert seen == {"url": url, "pid": status.pid}  # reused, not a second server
    child.stdin.write("\n")
    child.stdin.flush()
    assert json.loads(child.stdout.readline()) == {"stopped": False}  # we still use it
    assert child.wait(timeout=10) == 0
    assert server_status(tmp_path).running

    assert server.close() is True  # last user: stops it
    assert not server_status(tmp_path).running
    assert not _pid_alive(status.pid)


def test_last_user_to_leave_stops_the_server_even_if_it_did_not_start_it(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path)
    url = server.start()
    pid = server_status(tmp_path).pid
    child = _child(tmp_path)
    assert json.loads(child.stdout.readline())["url"] == url
    assert server.close() is False  # the child still uses it
    assert server_status(tmp_path).running
    child.stdin.write("\n")
    child.stdin.flush()
    assert json.loads(child.stdout.readline()) == {"stopped": True}
    child.wait(timeout=10)
    assert not server_status(tmp_path).running
    assert pid is not None and not _pid_alive(pid)


def test_stale_state_file_is_replaced(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state_dir = tmp_path / "nats"
    state_dir.mkdir()
    (state_dir / "server.json").write_text(
        json.dumps(
            {
                "pid": dead.pid,
                "url": "nats://127.0.0.1:1",
                "monitor_url": "http://127.0.0.1:1",
                "conf": str(state_dir / "server.conf"),
                "binary": "x",
                "started_at_ns": 1,
            }
        )
    )
    assert not server_status(tmp_path).running
    url = ensure_server(tmp_path)
    status = server_status(tmp_path)
    assert status.running and status.url == url and status.pid != dead.pid
    assert stop_server(tmp_path) is True
    (state_dir / "server.json").write_text("{not json")
    assert not server_status(tmp_path).running
    assert stop_server(tmp_path) is False


def test_persistent_server_survives_its_users_until_stopped(tmp_path: Path) -> None:
    url = ensure_server(tmp_path, persistent=True)
    with EmbeddedServer(tmp_path) as user:
        assert user.url == url
    status = server_status(tmp_path)
    assert status.running and status.persistent
    assert stop_server(tmp_path) is True
    assert not server_status(tmp_path).running
    assert not _pid_alive(status.pid)


def test_events_survive_a_restart_and_data_dirs_do_not_share(tmp_path: Path) -> None:
    event = ev.ModelPromoted.new(symbol="BTCUSDT", release_id="r1")

    async def write(data: Path) -> None:
        async with await EventLog.connect(NatsSettings(), data_dir=data) as log:
            await log.append(event)

    async def read(data: Path) -> list[ev.Event]:
        async with await EventLog.connect(NatsSettings(), data_dir=data) as log:
            return [e async for e in log.replay("MODELS")]

    asyncio.run(write(tmp_path / "a"))
    assert not server_status(tmp_path / "a").running  # stopped with its last user
    assert asyncio.run(read(tmp_path / "a")) == [event]
    assert asyncio.run(read(tmp_path / "b")) == []


def test_settings_validation_names_the_key() -> None:
    with pytest.raises(ConfigError, match="nats.urls"):
        NatsSettings(urls=["localhost:4222"])
    with pytest.raises(ConfigError, match="one authentication method"):
        NatsSettings(urls=["nats://h:1"], token="t", creds_file="/x.creds")
    with pytest.raises(ConfigError, match="nats.user and nats.password"):
        NatsSettings(urls=["nats://h:1"], user="u")
    with pytest.raises(ConfigError, match="tls_cert and nats.tls_key"):
        NatsSettings(urls=["tls://h:1"], tls_cert="/c.pem")
    with pytest.raises(ConfigError, match="replicas=3 needs a cluster"):
        NatsSettings(replicas=3)
    with pytest.raises(msgspec.ValidationError, match="nats.urls"):
        msgspec.convert({"urls": ["h:1"]}, NatsSettings)


def test_connect_options_map_auth_and_tls(tmp_path: Path) -> None:
    s = NatsSettings(urls=["nats://a:1", "nats://b:2"], user="u", password="p")
    opts = connect_options(s)
    assert opts["servers"] == ["nats://a:1", "nats://b:2"]
    assert (opts["user"], opts["password"]) == ("u", "p") and "tls" not in opts
    assert connect_options(NatsSettings(urls=["nats://a:1"], token="t"))["token"] == "t"
    seed = "SUAMK2FG4MI6UE3ACF3FK3OIQBCEIEZV7NSWFFEW63UXMRLFM2XLAXK4GY"
    assert (
        connect_options(NatsSettings(urls=["nats://a:1"], nkeys_seed=seed))["nkeys_seed_str"]
        == seed
    )
    seed_file = tmp_path / "user.nk"
    seed_file.write_text(seed)
    opts = connect_options(NatsSettings(urls=["nats://a:1"], nkeys_seed=str(seed_file)))
    assert opts["nkeys_seed"] == str(seed_file)
    with pytest.raises(ConfigError, match="creds_file"):
        connect_options(NatsSettings(urls=["nats://a:1"], creds_file=str(tmp_path / "no.creds")))
    with pytest.raises(ConfigError, match="tls_ca"):
        connect_options(NatsSettings(urls=["tls://a:1"], tls_ca=str(tmp_path / "no-ca.pem")))
    assert connect_options(NatsSettings(urls=["tls://a:1"]))["tls"] is not None
    with pytest.raises(ConfigError, match="nats.urls is empty"):
        connect_options(NatsSettings())


def _auth_server(tmp_path: Path, auth: str) -> tuple[subprocess.Popen[bytes], str]:
    conf = tmp_path / "auth.conf"
    conf.write_text(
        f'host: 127.0.0.1\nport: -1\nports_file_dir: "{tmp_path}"\n'
        f'jetstream {{ store_dir: "{tmp_path}" }}\n{auth}\n'
    )
    proc = subprocess.Popen([find_nats_server(), "-c", str(conf)], stderr=subprocess.DEVNULL)
    ports = tmp_path / f"{Path(find_nats_server()).name}_{proc.pid}.ports"
    for _ in range(500):
        if ports.exists() and ports.read_text():
            return proc, json.loads(ports.read_text())["nats"][0]
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("auth server did not start")


@pytest.mark.parametrize(
    ("auth", "good", "bad"),
    [
        ('authorization { token: "s3cret" }', {"token": "s3cret"}, {"token": "wrong"}),
        (
            'authorization { users = [ { user: "bob", password: "pw" } ] }',
            {"user": "bob", "password": "pw"},
            {"user": "bob", "password": "nope"},
        ),
    ],
)
def test_connects_with_credentials_and_refuses_wrong_ones(
    tmp_path: Path, auth: str, good: dict[str, str], bad: dict[str, str]
) -> None:
    proc, url = _auth_server(tmp_path, auth)
    fast = {"connect_attempts": 1, "reconnect_wait_s": 0.05, "connect_timeout_s": 2.0}

    async def main() -> None:
        async with await EventLog.connect(NatsSettings(urls=[url], **good, **fast)) as log:
            await log.append(ev.ExperimentStarted.new(experiment="e"))
        with pytest.raises(EventLogError, match="could not connect"):
            await EventLog.connect(NatsSettings(urls=[url], **bad, **fast))

    try:
        asyncio.run(main())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
