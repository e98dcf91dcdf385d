"""Feeds the CORE stream through the decision core and records what it decides.

Every instance runs one: each reads all of CORE in order (an ordered consumer from its last
checkpoint), so every instance holds the same state. Decisions are appended as `DecisionMade`
events whose ids are derived from the decided event, so the copies appended by several
instances are stored once (Nats-Msg-Id dedup). Running the retrains is the job runner's work,
which a shared work-queue consumer gives to exactly one instance.

Each message is one isolated step: a message that does not decode, an event `decide` raises
on, or a plugin reaction that raises is dead-lettered with its raw bytes and the reason, and
the decider goes on. The state and the position change only when the step is complete: the
step decides on a copy of the state, appends every result, then commits the copy. An append
the log refuses (server down, timeout) is retried with bounded backoff and never advances the
position; its outputs have ids derived from the event, so a retried step is stored once.
Checkpoints therefore only ever hold completed state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import msgspec
import nats.errors
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig, DeliverPolicy

from autoopt.config import Config
from autoopt.core import State, decision_event
from autoopt.core.decide import ignored
from autoopt.core.detectors import from_plugins
from autoopt.core.replay import decide_step
from autoopt.errors import DataError
from autoopt.events import DecisionMade, Event, decode, encode
from autoopt.ids import derived_event_id
from autoopt.log import EventLog
from autoopt.log.deadletter import dead_letter_event
from autoopt.log.eventlog import delivery_fields
from autoopt.log.retry import Backoff, describe, is_transient
from autoopt.plugins import Plugins
from autoopt.service.checkpoint import Checkpoints
from autoopt.service.core_stream import CORE_STREAM, core_last_seq
from autoopt.service.metrics import ServiceMetrics
from autoopt.subjects import subject_for

log = logging.getLogger(__name__)
_NEVER_STORED = (nats.errors.MaxPayloadError, DataError)
"""Append failures no retry can cure: the record is larger than the server takes, or invalid."""

_STALL_S = 2.0
"""No CORE message for this long while CORE holds more: the consumer is re-created."""

CONSUMER = "decider"
"""The consumer name the decider's dead letters carry."""


class Origin(msgspec.Struct, frozen=True):
    """Where a decided event came from: what a dead letter of it keeps."""

    subject: str
    seq: int
    payload: bytes
    headers: dict[str, str] = {}

    @classmethod
    def of(cls, event: Event) -> Origin:
        """For an event fed directly (not read from CORE): its own subject and encoding."""
        return cls(subject=subject_for(event), seq=0, payload=encode(event))


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
        self._detectors = from_plugins(plugins, config)
        """The streaming drift detectors, resolved from the plugins once: ConfigError here for
        an unknown one, and `decide` never calls the plugin manager."""
        self.state = State()
        self.seq = 0
        self.lag = 0
        self._since_checkpoint = 0
        self._stop: asyncio.Event | None = None
        self.stalled: str | None = None
        """Why CORE is not being read right now (None: it is); /readyz reports it."""
        self._core_last = 0  # CORE's last sequence as last seen

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
        """Save the committed state. A failed save is logged and retried at the next
        checkpoint: checkpoints only shorten a restart, the log stays the truth."""
        self._since_checkpoint = 0
        if not self.seq:
            return
        try:
            saved = await self._checkpoints.save(self.state, self.seq)
        except Exception as exc:
            log.warning("checkpoint at CORE sequence %d not saved: %s", self.seq, describe(exc))
            return
        if saved:
            self._metrics.checkpoints.inc()

    async def _subscribe(self) -> Any:
        """An ordered consumer on CORE from the message after the last decided one."""
        if self.seq:
            cfg = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.seq + 1)
        else:
            cfg = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        async with asyncio.timeout(self._log.settings.request_timeout_s):
            return await self._log.js.subscribe(
                "autoopt.>", stream=CORE_STREAM, ordered_consumer=True, config=cfg,
                pending_msgs_limit=100_000,
            )

    async def _refresh_lag(self) -> None:
        """Lag = CORE's last sequence - the last decided one, read from the stream itself (not
        from a delivery's pending count, which stops changing when deliveries stop); a stream
        that does not answer marks the decider stalled."""
        try:
            async with asyncio.timeout(min(self._log.settings.request_timeout_s, _STALL_S)):
                self._core_last = await core_last_seq(self._log)
        except Exception as exc:
            if not is_transient(exc):
                raise
            self.stalled = f"{CORE_STREAM} does not answer: {describe(exc)}"
        self._set_lag()

    def _set_lag(self) -> None:
        self.lag = max(0, self._core_last - self.seq)
        self._metrics.consumer_lag.set(self.lag)

    async def run(self, stop: asyncio.Event) -> None:
        """Decide every CORE message from the current position until ``stop`` is set.

        Survives leader elections, node kills and reconnects: when the ordered consumer cannot
        be created, or stops delivering for ``_STALL_S`` while CORE holds more, it is dropped
        and re-created from the last decided sequence on the `Backoff` schedule. Meanwhile
        ``stalled`` says why (``/readyz`` answers 503) and the lag keeps growing honestly."""
        self._stop = stop
        backoff = Backoff()
        sub: Any = None
        refreshed = heard = time.monotonic()
        try:
            while not stop.is_set():
                if sub is None:
                    try:
                        sub = await self._subscribe()
                        heard = time.monotonic()
                    except Exception as exc:
                        if not is_transient(exc):
                            raise
                        self.stalled = f"cannot subscribe to {CORE_STREAM}: {describe(exc)}"
                        await self._refresh_lag()
                        await backoff.sleep()
                        continue
                try:
                    msg = await sub.next_msg(timeout=0.5)
                except (TimeoutError, NatsTimeout):
                    msg = None
                except Exception as exc:  # the subscription broke (reconnect, consumer lost)
                    if not is_transient(exc) and not isinstance(exc, nats.errors.Error):
                        raise
                    self.stalled = f"{CORE_STREAM} subscription failed: {describe(exc)}"
                    sub = None
                    await backoff.sleep()
                    continue
                now = time.monotonic()
                if msg is not None:
                    await self._handle(msg)
                    self._core_last = max(self._core_last, self.seq + self.lag)
                    self._set_lag()
                    heard = now
                    if self.stalled is not None:
                        log.info("reading %s again at sequence %d", CORE_STREAM, self.seq)
                    self.stalled = None
                    backoff.reset()
                if msg is None or now - refreshed >= 1.0:
                    refreshed = now
                    stalled_before = self.stalled
                    self.stalled = None
                    await self._refresh_lag()
                    if self.stalled is None and self.lag and now - heard > _STALL_S:
                        self.stalled = (
                            f"{CORE_STREAM} consumer silent for {now - heard:.0f}s, "
                            f"{self.lag} events behind: re-creating it"
                        )
                        with contextlib.suppress(Exception):
                            await sub.unsubscribe()
                        sub = None
                        await backoff.sleep()
                    if self.stalled is not None and self.stalled != stalled_before:
                        log.warning("decider stalled: %s", self.stalled)
        finally:
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            await self.checkpoint()

    async def _handle(self, msg: Any) -> None:
        """Decide (or dead-letter) one CORE message, then advance past it; nothing advances
        when stopping interrupted the step's appends (the message is decided after restart)."""
        _, _, _, seq, _, ts_ns, pending = delivery_fields(msg.reply)
        if seq <= self.seq:  # delivered again (a resubscription): already decided
            return
        origin = Origin(
            subject=msg.subject,
            seq=seq,
            payload=bytes(msg.data),
            headers={str(k): str(v) for k, v in (msg.headers or {}).items()},
        )
        try:
            event = decode(msg.data)
        except DataError as exc:
            done = await self._undecodable(origin, exc)
        else:
            done = await self.feed(event, ts_ns, origin=origin)
        if not done:
            return
        self.seq = seq
        self.lag = pending
        self._metrics.core_seq.set(seq)
        self._metrics.consumer_lag.set(pending)
        self._since_checkpoint += 1
        if self._since_checkpoint >= self._config.service.checkpoint_every:
            await self.checkpoint()

    async def feed(self, event: Event, now_ns: int, *, origin: Origin | None = None) -> bool:
        """Decide one event at the log's clock and record the outcomes and plugin reactions.

        The step works on a copy of the state and commits it only once every result is
        appended. An event `decide` raises on is dead-lettered and leaves the state as it
        was; a reaction that raises is dead-lettered while the decisions still count (the
        core's state depends on the log and config only, never on plugins, so every
        instance and every replay agree). Returns False only when stopping interrupted the
        appends: then nothing changed."""
        kind = type(event).type_tag()
        if ignored(event):
            self._metrics.events_consumed.labels(kind).inc()
            return True
        origin = origin or Origin.of(event)
        try:
            state, commands = decide_step(self.state, event, now_ns, self._config,
                                          detectors=self._detectors)
        except Exception as exc:
            log.error("decide failed on %s %s: %s", kind, event.event_id, describe(exc))
            return await self._append_all([self._letter(origin, f"decide failed: {describe(exc)}", event)])
        outputs = [decision_event(command, event) for command in commands]
        try:
            outputs += self._reactions(event)
        except Exception as exc:
            log.error("plugin reaction to %s %s failed: %s", kind, event.event_id, describe(exc))
            outputs.append(self._letter(origin, f"plugin reaction failed: {describe(exc)}", event))
        if not await self._append_all(outputs):
            return False
        self.state = state
        self._metrics.events_consumed.labels(kind).inc()
        for command in commands:
            self._metrics.decisions.labels(command.kind, command.reason).inc()
            if command.actionable:
                log.info(
                    "decided %s for %s (%s)", command.kind, command.symbol, command.reason,
                    extra={"event_id": command.id, "correlation_id": event.correlation_id or event.event_id},
                )
        return True

    async def _append_all(self, events: list[Event]) -> bool:
        """Append ``events`` in order, retrying a refused append with bounded backoff until it
        is stored; False when ``stop`` was set meanwhile. Every id is derived from the decided
        event, so what an earlier try stored is not stored twice."""
        backoff = Backoff()
        for event in events:
            while True:
                try:
                    await self._log.append(event)
                    break
                except Exception as exc:  # the log's fault, not the event's: never dead-letter
                    if self._stop is not None and self._stop.is_set():
                        log.warning("stopping with CORE sequence %d not advanced: %s", self.seq, describe(exc))
                        return False
                    if isinstance(exc, _NEVER_STORED) and not isinstance(event, DecisionMade):
                        # this record can never be stored (too large for the server, invalid):
                        # retrying would stall the core forever on one reaction or letter
                        log.error("dropping %s %s, which the log refuses for good: %s",
                                  event.type_tag(), event.event_id, describe(exc))
                        self._metrics.undecodable.inc()
                        break
                    # /readyz and the lag stay honest while the core cannot move
                    await self._refresh_lag()
                    self.stalled = f"cannot append {event.type_tag()}: {describe(exc)}"
                    log.warning(
                        "append of %s %s failed (retrying; CORE sequence stays at %d): %s",
                        event.type_tag(), event.event_id, self.seq, describe(exc),
                    )
                    await backoff.sleep()
            backoff.reset()
        if self.stalled is not None and self.stalled.startswith("cannot append"):
            self.stalled = None  # stored now: the core moves again
        return True

    def _letter(self, origin: Origin, reason: str, cause: Event | None = None) -> Event:
        return dead_letter_event(
            stream=CORE_STREAM,
            subject=origin.subject,
            seq=origin.seq,
            consumer=CONSUMER,
            error=reason,
            payload=origin.payload,
            headers=origin.headers,
            deliveries=1,
            cause=cause,
        )

    def _reactions(self, event: Event) -> list[Event]:
        """The plugins' reactions to ``event``, with ids derived from it: every instance
        appends the same reaction once."""
        out: list[Event] = []
        for returned in self._plugins.hook.autoopt_on_event(event=event):
            for item in returned or ():
                if not isinstance(item, Event):
                    raise TypeError(f"autoopt_on_event returned a non-event: {item!r}")
                out.append(
                    msgspec.structs.replace(
                        item,
                        event_id=derived_event_id(event.event_id, f"reaction/{len(out)}"),
                        causation_id=event.event_id,
                        correlation_id=event.correlation_id or event.event_id,
                    )
                )
        return out

    async def _undecodable(self, origin: Origin, exc: Exception) -> bool:
        self._metrics.undecodable.inc()
        log.error("CORE message %d on %s does not decode: %s", origin.seq, origin.subject, exc)
        return await self._append_all([self._letter(origin, f"undecodable: {describe(exc)}")])
