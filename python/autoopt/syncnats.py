"""A NATS connection usable from synchronous code: its own event loop on a daemon thread.

Why: the model registry and Optuna's storages have synchronous APIs (the registry is called
from worker threads and from coroutines alike; Optuna calls its storage from its own loop), but
nats-py is asyncio-only. `SyncNats` runs one nats-py client on a private loop in a background
thread and runs coroutines there with `call`, blocking the caller up to a timeout. A caller on
another loop is blocked like by file I/O, never deadlocked, since the client never runs on it.

Connecting is lazy (first `call`) and bounded by ``nats.connect_timeout_s`` (`dial`); with no
URL configured the embedded server of the data dir is started or reused, as `EventLog` does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from autoopt.errors import EventLogError
from autoopt.log.connect import NatsSettings, dial

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from nats.aio.client import Client

    from autoopt.log.server import EmbeddedServer

T = TypeVar("T")


class SyncNats:
    """One lazily connected nats-py client behind a synchronous `call`."""

    def __init__(self, settings: NatsSettings, *, data_dir: str | Path | None = None) -> None:
        self.settings = settings
        self._data_dir = data_dir
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._nc: Client | None = None
        self._js: Any = None
        self._server: EmbeddedServer | None = None

    # ------------------------------------------------------------------ lifecycle

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="autoopt-syncnats", daemon=True)
        self._thread.start()
        ready.wait()
        return loop

    def _connected(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = self._start_loop()
            if self._nc is None:
                urls: list[str] | None = None
                if self.settings.embedded:
                    if self._data_dir is None:
                        raise EventLogError("no NATS URL configured (nats.urls) and no data dir")
                    from autoopt.log.server import EmbeddedServer

                    self._server = EmbeddedServer(Path(self._data_dir))
                    urls = [self._server.start()]
                fut = asyncio.run_coroutine_threadsafe(dial(self.settings, urls), self._loop)
                self._nc = fut.result(self.settings.connect_timeout_s + 5.0)
                self._js = self._nc.jetstream(timeout=self.settings.request_timeout_s)
            return self._loop

    @property
    def js(self) -> Any:
        """The JetStream context (connects first); only for coroutines run through `call`."""
        self._connected()
        return self._js

    def call(self, fn: Callable[[], Awaitable[T]], *, timeout: float | None = None) -> T:
        """Run ``fn()`` on the connection's loop and return its result; a coroutine still
        running after ``timeout`` (default: ``nats.request_timeout_s`` × 3) is cancelled and
        `EventLogError` is raised naming the wait."""
        loop = self._connected()
        if threading.current_thread() is self._thread:
            raise RuntimeError("SyncNats.call from its own loop would deadlock")
        limit = timeout if timeout is not None else self.settings.request_timeout_s * 3

        async def bounded() -> T:
            return await asyncio.wait_for(fn(), limit)

        fut = asyncio.run_coroutine_threadsafe(bounded(), loop)
        try:
            return fut.result(limit + 5.0)
        except (TimeoutError, concurrent.futures.TimeoutError):
            fut.cancel()
            raise EventLogError(f"NATS did not answer within {limit:g}s") from None

    def close(self) -> None:
        """Disconnect, stop the loop thread and release the embedded server, if any."""
        with self._lock:
            loop, nc, server = self._loop, self._nc, self._server
            self._loop = self._nc = self._js = self._server = None
        if loop is not None:
            if nc is not None:

                async def shut() -> None:
                    try:
                        await asyncio.wait_for(nc.drain(), 5.0)
                    except Exception:
                        await nc.close()

                try:
                    asyncio.run_coroutine_threadsafe(shut(), loop).result(10.0)
                except Exception as exc:  # closing is best effort: the process may be going down
                    log.debug("nats client on its own thread: close did not finish: %s", exc)
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(5.0)
            self._thread = None
        if server is not None:
            server.close()

    def __enter__(self) -> SyncNats:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["SyncNats"]
