"""An Optuna journal backend on a JetStream stream: the study's operation log, in order.

Why: Optuna's `JournalStorage` needs only an append-only log with one total order that every
process reads; a JetStream stream is exactly that, replicated like the event log, so a
deployment whose only server is NATS still has shared, resumable studies.

Each `append_logs` call is one message (a JSON list of Optuna's log records), so a multi-record
append is never interleaved with another worker's. Log numbers count records, not messages.
Reading follows the stream with one ordered push consumer per process; `read_logs` first asks
the stream's last sequence and waits until the consumer has delivered up to it, so a reader
never misses a record that was acknowledged before it asked.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from typing import Any

from optuna.storages.journal import BaseJournalBackend

from autoopt.syncnats import SyncNats

DEFAULT_STREAM = "AUTOOPT_OPTUNA"


class NatsJournalBackend(BaseJournalBackend):
    """Optuna journal records on stream ``stream`` (subject ``autoopt_optuna.<stream>``)."""

    def __init__(self, nats: SyncNats, stream: str = DEFAULT_STREAM) -> None:
        self._nats = nats
        self.stream = stream
        self.subject = f"autoopt_optuna.{stream}"
        self._logs: list[dict[str, Any]] = []
        self._seq = 0
        self._sub: Any = None
        self._arrived: asyncio.Condition | None = None
        self._starting: asyncio.Lock | None = None

    async def _start(self) -> None:
        if self._sub is not None:
            return
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:  # two threads' first calls must not subscribe twice
            if self._sub is None:
                await self._subscribe()

    async def _subscribe(self) -> None:
        from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType
        from nats.js.errors import NotFoundError

        js = self._nats.js
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(name=self.stream, subjects=[self.subject],
                                storage=StorageType.FILE, num_replicas=self._nats.settings.replicas,
                                description="Optuna journal (autoopt studies)")
        self._arrived = asyncio.Condition()

        async def on_msg(msg: Any) -> None:
            assert self._arrived is not None
            async with self._arrived:
                self._logs.extend(json.loads(msg.data))
                self._seq = msg.metadata.sequence.stream
                self._arrived.notify_all()

        self._sub = await js.subscribe(
            self.subject, cb=on_msg, ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))

    def _window(self) -> float:
        return max(30.0, 3 * self._nats.settings.request_timeout_s)

    async def _retrying(self, op: Any) -> Any:
        """`op` retried while it fails for a passing reason (a stream leader election, a
        failover), each try bounded by the request timeout."""
        from autoopt.log.retry import retrying

        limit = self._nats.settings.request_timeout_s

        async def once() -> Any:
            return await asyncio.wait_for(op(), limit)

        return await retrying(once, what="Optuna journal on NATS", deadline_s=self._window())

    async def _caught_up(self) -> None:
        await self._retrying(self._start)
        info = await self._retrying(lambda: self._nats.js.stream_info(self.stream))
        last = info.state.last_seq
        assert self._arrived is not None
        async with self._arrived:
            await self._arrived.wait_for(lambda: self._seq >= last)

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        self._nats.call(self._caught_up, timeout=2 * self._window())
        return self._logs[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = json.dumps(logs).encode()
        # a retried publish whose first try was stored unseen is dropped by JetStream's
        # duplicate window: one append is one message, never two
        headers = {"Nats-Msg-Id": uuid.uuid4().hex}

        async def publish() -> None:
            await self._retrying(self._start)
            await self._retrying(lambda: self._nats.js.publish(
                self.subject, data, stream=self.stream, headers=headers))

        self._nats.call(publish, timeout=2 * self._window())


__all__ = ["DEFAULT_STREAM", "NatsJournalBackend"]
