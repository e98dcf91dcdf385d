"""A continuous pull on a durable JetStream consumer: messages stream in as they are stored.

Why: nats-py's ``fetch(batch, timeout)`` asks for a batch and then waits for *all* of it (or the
timeout) once the consumer is caught up, so at a modest rate the first message of a fetch waits
for the whole timeout, and every fetch costs a request round trip. Latency-sensitive consumers
(the A/B router) instead keep pull requests outstanding, as nats.go's ``Consume`` does: a
request for ``batch`` messages goes out whenever fewer than half a batch are still owed, so the
server pushes each message as soon as it is stored, while the consumer keeps pull semantics
(``max_ack_pending``, several instances sharing one durable consumer).

Requests expire after ``expires_s`` (short, so a closed feed's requests do not outlive it by much:
until they expire the server may still hand them messages, which then wait out ``ack_wait``); the
server then reports how many messages the request still owed (status 408) and a new request
replaces it. Idle heartbeats show the requests are alive: when neither messages nor heartbeats
arrived for two heartbeat periods (the server restarted, the client reconnected), the owed count
is reset and requests are sent afresh.

When nobody answers a request (status 503: the stream or consumer has no leader during an
election, or the consumer was deleted) the next request waits the `autoopt.log.retry.Backoff`
schedule instead of going out at once; ``failing``/``failures`` say why and how often since the
last message, so the owner can re-create a deleted consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from autoopt.log.retry import Backoff

PENDING_MESSAGES = "Nats-Pending-Messages"


def status_of(msg: Msg) -> str | None:
    """The status code of a JetStream status message (no payload, a ``Status`` header)."""
    if not msg.data and msg.headers:
        return msg.headers.get("Status")
    return None


class Collector:
    """Gathers messages from a plain subscription into a list, so the reader drains in bulk."""

    __slots__ = ("items", "ready")

    def __init__(self) -> None:
        self.items: list[Msg] = []
        self.ready = asyncio.Event()

    async def cb(self, msg: Msg) -> None:
        self.items.append(msg)
        self.ready.set()

    async def take(self, timeout: float, max_n: int | None = None) -> list[Msg]:
        """Up to ``max_n`` (default: all) collected messages in arrival order, waiting at most
        ``timeout`` s for the first (an empty list if none came)."""
        if not self.items:
            self.ready.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.ready.wait()
        if max_n is None or len(self.items) <= max_n:
            items, self.items = self.items, []
        else:
            items, self.items = self.items[:max_n], self.items[max_n:]
        return items


class PullFeed:
    """Keeps pull requests outstanding on ``next_subject`` and collects what arrives."""

    def __init__(
        self,
        nc: Client,
        next_subject: str,
        *,
        batch: int = 512,
        expires_s: float = 5.0,
        heartbeat_s: float = 1.0,
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        if not 0 < heartbeat_s < expires_s:
            raise ValueError(f"need 0 < heartbeat_s < expires_s, got {heartbeat_s}, {expires_s}")
        self._nc = nc
        self._next_subject = next_subject
        self.batch = batch
        self._request = json.dumps(
            {
                "batch": batch,
                "expires": int(expires_s * 1e9),
                "idle_heartbeat": int(heartbeat_s * 1e9),
            }
        ).encode()
        self._heartbeat_s = heartbeat_s
        self._owed = 0  # messages requested and not yet received
        self._collected = Collector()
        self._last_heard = time.monotonic()
        self._inbox = ""
        self._sub: Any = None
        self.requests_sent = 0
        self.errors: list[str] = []  # status 409 descriptions (consumer deleted, ...), newest last
        self.failing: str | None = None  # why no message came since the last one (None: fine)
        self.failures = 0  # failed requests (503, 409, silence) since the last message
        self._backoff = Backoff()
        self._retry_at: float | None = None  # when to ask again after a failure

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)
        await self._top_up()

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def _top_up(self) -> None:
        while self._owed <= self.batch // 2:
            self._owed += self.batch
            self.requests_sent += 1
            await self._nc.publish(self._next_subject, self._request, reply=self._inbox)

    async def _on_msg(self, msg: Msg) -> None:
        self._last_heard = time.monotonic()
        if (status := status_of(msg)) is not None:
            headers = msg.headers or {}
            if status == "100":  # idle heartbeat: our requests are alive
                if self._retry_at is None and self.failing is not None:
                    self.failing, self.failures = None, 0
                    self._backoff.reset()
                return
            if status in ("408", "409"):  # a request expired or was cut short
                owed = headers.get(PENDING_MESSAGES)
                self._owed = max(0, self._owed - int(owed)) if owed else 0
                if status == "409":
                    desc = headers.get("Description", "") or status
                    self.errors = [*self.errors[-9:], desc]
                    if "consumer deleted" in desc.lower() or "leadership" in desc.lower():
                        self._failed(f"409 {desc}")
                        return
            elif status == "503":  # no responders: no leader, or no such consumer
                self._failed("503 no responders (no leader, or the consumer is gone)")
                return
            if self._retry_at is None:
                await self._top_up()
            return
        self._owed = max(0, self._owed - 1)
        if self.failing is not None or self._retry_at is not None:
            self.failing, self.failures, self._retry_at = None, 0, None
            self._backoff.reset()
        await self._collected.cb(msg)
        if self._owed <= self.batch // 2:
            await self._top_up()

    def _failed(self, why: str) -> None:
        """A request was refused: ask again after the next backoff delay."""
        self._owed = 0
        self.failing = why
        self.failures += 1
        self._retry_at = time.monotonic() + self._backoff.next_delay()

    async def take(self, max_n: int, timeout: float) -> list[Msg]:
        """Up to ``max_n`` collected messages, in delivery order; waits at most ``timeout``
        seconds for the first one (an empty list if none came)."""
        if self._retry_at is not None:
            timeout = max(0.0, min(timeout, self._retry_at - time.monotonic()))
        msgs = await self._collected.take(timeout, max_n)
        now = time.monotonic()
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            self._last_heard = now
            await self._top_up()
        elif not msgs and self._retry_at is None and now - self._last_heard > 2 * self._heartbeat_s:
            # our requests are gone (server restart, reconnect): ask again, on the schedule
            self._failed("no messages or heartbeats (server restarted or reconnecting)")
        return msgs


__all__ = ["Collector", "PullFeed", "status_of"]
