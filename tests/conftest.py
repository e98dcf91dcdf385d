"""Shared fixtures. Everything here talks to real things: a real nats-server, real files."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from autoopt.log import EmbeddedServer, EventLog, NatsSettings


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[str]:
    """URL of a fresh nats-server with JetStream, on a random loopback port (never 4222), its
    store in this test's tmp dir; stopped after the test."""
    server = EmbeddedServer(tmp_path / "nats-fixture")
    url = server.start()
    assert not url.endswith(":4222")
    try:
        yield url
    finally:
        server.close()


@pytest.fixture
def nats_settings(nats_server: str) -> NatsSettings:
    """Settings pointing at the fixture server, with short timeouts for tests."""
    return NatsSettings(urls=[nats_server], request_timeout_s=5.0, connect_timeout_s=5.0)


@pytest.fixture
async def event_log(nats_settings: NatsSettings) -> AsyncIterator[EventLog]:
    """An EventLog connected to the fixture server, streams created."""
    log = await EventLog.connect(nats_settings)
    try:
        yield log
    finally:
        await log.close()
