"""Feeds the CORE stream through the decision core and records what it decides.

Every instance runs one: each reads all of CORE in order (an ordered consumer from its last
checkpoint), so every instance holds the same state. Decisions are appended as `DecisionMade`
events whose ids are derived from the decided event, so the copies appended by several
instances are stored once (Nats-Msg-Id dedup). Running the retrains is the job runner's work,
which a shared work-queue consumer gives to exactly one instance.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig, DeliverPolicy

from autoopt.config import Config
from autoopt.core import State, decide, decision_event
from autoopt.events import ErrorRaised, Event, decode
from autoopt.ids import derived_event_id
from autoopt.log import EventLog
from autoopt.log.eventlog import delivery_fields
from autoopt.plugins import Plugins
from autoopt.service.checkpoint import Checkpoints
from autoopt.service.core_stream import CORE_STREAM, core_last_seq
from autoopt.service.metrics import ServiceMetrics

log = logging.getLogger(__name__)


class Decider:
    """Owns the core state and the position in CORE."""

    def __init__(
        self,
        event_log: EventLog,
        config: Config,
        plugins: Plugins,
        metrics: ServiceMetrics,
        checkpoints: Checkpoints,
    ) -> None:
        self._log = event_log
        self._config = config
        self._plugins = plugins
        self._metrics = metrics
        self._checkpoints = checkpoints
        self.state = State()
        self.seq = 0
        self.lag = 0
        self._since_checkpoint = 0

    async def restore(self) -> int:
        """Load the latest usable checkpoint; returns the sequence it covers (0: none)."""
        loaded = await self._checkpoints.load()
        if loaded is not None:
            self.state, self.seq = loaded
            log.info("restored core state at CORE sequence %d", self.seq)
        self.lag = max(0, await core_last_seq(self._log) - self.seq)
        self._metrics.consumer_lag.set(self.lag)
        return self.seq

    async def checkpoint(self) -> None:
        if self.seq and await self._checkpoints.save(self.state, self.seq):
            self._metrics.checkpoints.inc()
        self._since_checkpoint = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Decide every CORE message from the current position until ``stop`` is set."""
        if self.seq:
            cfg = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.seq + 1)
        else:
            cfg = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        sub = await self._log.js.subscribe(
            "autoopt.>", stream=CORE_STREAM, ordered_consumer=True, config=cfg,
            pending_msgs_limit=100_000,
        )
        try:
            while not stop.is_set():
                try:
                    msg = await sub.next_msg(timeout=0.5)
                except (TimeoutError, NatsTimeout):
                    self.lag = max(0, await core_last_seq(self._log) - self.seq)
                    self._metrics.consumer_lag.set(self.lag)
                    continue
                await self._handle(msg)
        finally:
            await sub.unsubscribe()
            await self.checkpoint()

    async def _handle(self, msg: Any) -> None:
        _, _, _, seq, _, ts_ns, pending = delivery_fields(msg.reply)
        try:
            event = decode(msg.data)
        except Exception as exc:
            await self._undecodable(msg, seq, ts_ns, exc)
        else:
            await self.feed(event, ts_ns)
        self.seq = seq
        self.lag = pending
        self._metrics.core_seq.set(seq)
        self._metrics.consumer_lag.set(pending)
        self._since_checkpoint += 1
        if self._since_checkpoint >= self._config.service.checkpoint_every:
            await self.checkpoint()

    async def feed(self, event: Event, now_ns: int) -> None:
        """Decide one event at the log's clock and record the outcomes and plugin reactions."""
        self._metrics.events_consumed.labels(type(event).type_tag()).inc()
        self.state, commands = decide(self.state, event, now_ns, self._config)
        for command in commands:
            await self._log.append(decision_event(command, event))
            self._metrics.decisions.labels(command.kind, command.reason).inc()
            if command.actionable:
                log.info(
                    "decided %s for %s (%s)", command.kind, command.symbol, command.reason,
                    extra={"event_id": command.id, "correlation_id": event.correlation_id or event.event_id},
                )
        for n, reaction in enumerate(self._reactions(event)):
            # ids derived from the cause: every instance appends the same reaction once
            reaction = msgspec.structs.replace(
                reaction,
                event_id=derived_event_id(event.event_id, f"reaction/{n}"),
                causation_id=event.event_id,
                correlation_id=event.correlation_id or event.event_id,
            )
            await self._log.append(reaction)

    def _reactions(self, event: Event) -> list[Event]:
        out: list[Event] = []
        for returned in self._plugins.hook.autoopt_on_event(event=event):
            for item in returned or ():
                if not isinstance(item, Event):
                    raise TypeError(f"autoopt_on_event returned a non-event: {item!r}")
                out.append(item)
        return out

    async def _undecodable(self, msg: Any, seq: int, ts_ns: int, exc: Exception) -> None:
        self._metrics.undecodable.inc()
        log.error("CORE message %d on %s does not decode: %s", seq, msg.subject, exc)
        await self._log.append(
            ErrorRaised(
                event_id=derived_event_id(f"core-seq-{seq}", "undecodable"),
                ts_event=ts_ns,
                ts_init=ts_ns,
                component="decider",
                error_type=type(exc).__name__,
                message=str(exc),
                details={"subject": msg.subject, "core_seq": seq, "raw_bytes": len(msg.data)},
            )
        )
