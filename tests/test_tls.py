"""Connecting to NATS fails fast and says why: a real nats-server with TLS (certificates made
by trustme) or with a password, and a TCP server that never speaks NATS.

Each failure ends with one `EventLogError` line naming the cause, bounded by
``nats.connect_timeout_s`` (the pytest timeout is only a guard against a hang)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import trustme

from autoopt.errors import EventLogError
from autoopt.events import MetricsReported
from autoopt.log import EventLog, NatsSettings
from autoopt.log.server import find_nats_server

SECRET = "s3cr3t-Pa55word"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _nats_server(tmp_path: Path, extra: dict) -> Iterator[int]:
    """A real nats-server on a free loopback port with ``extra`` in its (JSON) config file."""
    port = _free_port()
    conf = tmp_path / "server.conf"
    conf.write_text(json.dumps({
        "host": "127.0.0.1", "port": port, "jetstream": {"store_dir": str(tmp_path / "js")},
        **extra,
    }))
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([find_nats_server(), "-c", str(conf)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            assert time.monotonic() < deadline, "nats-server did not listen"
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
def tls_server(tmp_path: Path) -> Callable[..., contextlib.AbstractContextManager[int]]:
    """Start a TLS nats-server whose certificate is issued by ``ca`` for ``names``."""

    def start(ca: trustme.CA, *names: str, **validity: dt.datetime):
        cert = ca.issue_cert(*names, **validity)
        cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
        cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        return _nats_server(tmp_path, {"tls": {
            "cert_file": str(tmp_path / "server.pem"),
            "key_file": str(tmp_path / "server.key"),
            "ca_file": str(tmp_path / "ca.pem"),
        }})

    return start


def _client_ca(tmp_path: Path, ca: trustme.CA) -> str:
    path = tmp_path / "client-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def _settings(url: str, **kw: object) -> NatsSettings:
    return NatsSettings(urls=[url], connect_timeout_s=5.0, reconnect_wait_s=0.2, **kw)


async def _connect_error(settings: NatsSettings) -> str:
    with pytest.raises(EventLogError) as err:
        await EventLog.connect(settings)
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.mark.timeout(60)
async def test_trusted_certificate_connects_and_appends(tmp_path: Path, tls_server) -> None:
    ca = trustme.CA()
    with tls_server(ca, "localhost") as port:
        log = await EventLog.connect(
            _settings(f"tls://localhost:{port}", tls_ca=_client_ca(tmp_path, ca))
        )
        try:
            result = await log.append(MetricsReported.new(symbol="X", window="1d", metrics={"a": 1.0}))
            assert result.seq == 1
        finally:
            await log.close()


@pytest.mark.timeout(60)
async def test_untrusted_ca_fails_with_the_verify_reason(tmp_path: Path, tls_server) -> None:
    with tls_server(trustme.CA(), "localhost") as port:
        other_ca = _client_ca(tmp_path, trustme.CA())
        text = await _connect_error(_settings(f"tls://localhost:{port}", tls_ca=other_ca))
    assert "TLS: certificate verify failed: unable to get local issuer certificate" in text


@pytest.mark.timeout(60)
async def test_hostname_mismatch_is_named(tmp_path: Path, tls_server) -> None:
    ca = trustme.CA()
    with tls_server(ca, "nats.example.org") as port:
        text = await _connect_error(
            _settings(f"tls://localhost:{port}", tls_ca=_client_ca(tmp_path, ca))
        )
    assert "TLS: certificate verify failed" in text
    assert "hostname mismatch" in text.lower()


@pytest.mark.timeout(60)
async def test_expired_certificate_is_named(tmp_path: Path, tls_server) -> None:
    ca = trustme.CA()
    now = dt.datetime.now(dt.UTC)
    with tls_server(
        ca, "localhost", not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1)
    ) as port:
        text = await _connect_error(
            _settings(f"tls://localhost:{port}", tls_ca=_client_ca(tmp_path, ca))
        )
    assert "certificate has expired" in text


@pytest.mark.timeout(60)
async def test_missing_tls_file_is_a_config_error(tmp_path: Path) -> None:
    from autoopt.errors import ConfigError

    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match=r"nats\.tls_ca: file .*nope\.pem.* does not exist"):
        await EventLog.connect(_settings("tls://localhost:1", tls_ca=str(missing)))


@pytest.mark.timeout(60)
async def test_wrong_password_is_refused_without_echoing_it(tmp_path: Path) -> None:
    auth = {"authorization": {"user": "svc", "password": "the-right-one"}}
    with _nats_server(tmp_path, auth) as port:
        text = await _connect_error(
            _settings(f"nats://127.0.0.1:{port}", user="svc", password=SECRET)
        )
        url_text = await _connect_error(_settings(f"nats://svc:{SECRET}@127.0.0.1:{port}"))
        good = await EventLog.connect(
            _settings(f"nats://127.0.0.1:{port}", user="svc", password="the-right-one")
        )
        await good.close()
    assert "authorization violation" in text
    assert "authorization violation" in url_text
    assert SECRET not in text and SECRET not in url_text
    assert f"nats://svc:***@127.0.0.1:{port}" in url_text


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never says a word (not NATS)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()


@pytest.mark.timeout(60)
async def test_server_that_never_speaks_nats_ends_within_the_timeout(silent_server: int) -> None:
    settings = NatsSettings(urls=[f"nats://127.0.0.1:{silent_server}"], connect_timeout_s=2.0)
    text = await _connect_error(settings)
    assert "no NATS greeting" in text
