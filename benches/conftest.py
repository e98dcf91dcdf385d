"""Fixtures for the benchmarks: a real nats-server and one event loop per module."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from autoopt.log import EmbeddedServer, EventLog, NatsSettings


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A private event loop: pytest-benchmark times plain functions, which run coroutines on it."""
    lp = asyncio.new_event_loop()
    try:
        yield lp
    finally:
        lp.close()


@pytest.fixture(scope="module")
def bench_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a fresh embedded nats-server with JetStream (random loopback port)."""
    server = EmbeddedServer(tmp_path_factory.mktemp("bench-nats"))
    url = server.start()
    try:
        yield url
    finally:
        server.close()


@pytest.fixture(scope="module")
def bench_log(loop: asyncio.AbstractEventLoop, bench_server: str) -> Iterator[EventLog]:
    """An EventLog on `loop`, streams created."""
    log = loop.run_until_complete(EventLog.connect(NatsSettings(urls=[bench_server])))
    try:
        yield log
    finally:
        loop.run_until_complete(log.close())
