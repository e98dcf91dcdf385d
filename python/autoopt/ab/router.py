"""The A/B signal router: every emitted signal goes to its variant, with the variant's config.

Why: the engine must not know about experiments. It consumes routed signals; the router decides,
per signal, which experiment and variant it belongs to, applies that variant's config, records
the route in the log (so outcomes join) and delivers it.

Per `SignalEmitted` (from a durable JetStream consumer):
* No running experiment covers its symbol, or its unit is outside coverage (or an ``account``
  unit without ``extra["account"]``): delivered unchanged to ``autoopt.route.live``.
* Split experiment: the unit's variant (`Experiment.assign`) gets a `SignalRouted` delivered
  to ``autoopt.route.live.<experiment>.<variant>``. A ``symbol`` or ``account`` unit's first
  assignment is recorded as `VariantAssigned`; for ``signal_id`` units every signal is a new
  unit and its `SignalRouted` (unit key, variant, bucket-determined) is the assignment record.
* Shadow experiment: the champion's routed signal goes live; each challenger's goes to
  ``autoopt.route.paper.<experiment>.<variant>`` with ``paper=True`` for the paper trader, so only
  the champion's signals reach the engine.

Config applied: ``release_id`` from the variant; ``confidence_threshold`` turns a signal below it
into ``side="flat"``; ``size_multiplier`` is carried for the engine's sizing; every other
(plugin-declared) key is carried in ``config``.

Delivery is core NATS (lowest latency); the routes of a batch are then appended to the log as one
`SignalsRouted` event (one write per batch, not per signal), the assignments beside it, and only
after that are the signals acknowledged: a crash redelivers them and the same routes (derived
ids) are produced again, so the log dedups them and readers count each route once. The
experiments are followed live: subscribe to ``autoopt.experiment.>`` first, then replay, so no
lifecycle change is missed; a concluded or paused experiment stops receiving traffic at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Collection, Sequence
from typing import Any

import msgspec
from nats.aio.msg import Msg

from autoopt._native import RouteChunk, RouteTable
from autoopt.ab.experiments import BUILTIN_CONFIG_KEYS, Experiment, ExperimentBook, assignment_event
from autoopt.ab.records import RouteRecords
from autoopt.clock import Clock
from autoopt.errors import DataError
from autoopt.events import (
    Event,
    SignalEmitted,
    SignalRouted,
    VariantSpec,
    decode,
    encode,
)
from autoopt.ids import derived_event_id
from autoopt.log import EventLog
from autoopt.log.eventlog import Delivered, DurableConsumer
from autoopt.log.frames import FrameWriter
from autoopt.subjects import PREFIX, escape_token, subject_filter, subject_filter_for_type

log = logging.getLogger("autoopt.ab.router")

ROUTE_PREFIX = f"{PREFIX}.route"
PASSTHROUGH_SUBJECT = f"{ROUTE_PREFIX}.live"
LIVE_FILTER = f"{ROUTE_PREFIX}.live.>"
PAPER_FILTER = f"{ROUTE_PREFIX}.paper.>"
PERSISTS_IN_FLIGHT = 8  # groups of routed batches whose records may be being stored at once
PERSIST_INTERVAL_S = 0.005  # routed batches within this are stored and acked together


def route_subject(experiment: str, variant: str, *, paper: bool) -> str:
    """Where a variant's routed signals are delivered."""
    mode = "paper" if paper else "live"
    return f"{ROUTE_PREFIX}.{mode}.{escape_token(experiment)}.{escape_token(variant)}"


class _VariantPlan(msgspec.Struct, frozen=True):
    """A variant's routing constants: its subject, id step and applied config."""

    subject: str
    step: str
    threshold: float | None
    size_multiplier: float
    extra: dict[str, Any]


class RoutePlan(msgspec.Struct):
    """What one signal turns into: deliveries (subject, payload) and events for the log."""

    deliveries: list[tuple[str, bytes]]
    records: list[Event]


class SignalRouter:
    """Routes signals by the experiments in ``book``; `route` is pure, `run` does the I/O."""

    def __init__(
        self,
        log_: EventLog,
        book: ExperimentBook,
        *,
        clock: Clock | None = None,
        declared_keys: Collection[str] = (),
        native: bool = True,
    ) -> None:
        self.log = log_
        self.book = book
        self.clock = clock
        self.declared_keys = frozenset(declared_keys)
        self.native = native  # route batches in `autoopt._native` (same output, ~10x less CPU)
        self.name = "ab-router"  # the durable consumer's name once `run` starts
        self._cache_version = -1
        self._by_symbol: dict[str, Experiment | None] = {}
        self._plans: dict[tuple[str, str, bool], _VariantPlan] = {}
        self._table: RouteTable | None = None
        self._table_experiments: list[Experiment] = []
        self.routed = 0
        self.passed = 0
        self.unroutable = 0
        self._book_sub: Any = None
        self.ready = asyncio.Event()  # set once `run` is consuming

    # ---------------------------------------------------------------- pure routing

    def _refresh(self) -> None:
        """Drop the routing caches when an experiment's lifecycle changed."""
        if self._cache_version != self.book.lifecycle_version:
            self._by_symbol.clear()
            self._plans.clear()
            self._table = None
            self._cache_version = self.book.lifecycle_version

    def _experiment_for(self, symbol: str) -> Experiment | None:
        self._refresh()
        try:
            return self._by_symbol[symbol]
        except KeyError:
            exp = self._by_symbol[symbol] = self.book.running_for(symbol)
            return exp

    def _plan(self, exp: Experiment, v: VariantSpec, paper: bool) -> _VariantPlan:
        """What routing to ``v`` needs, worked out once per variant (and lifecycle version)."""
        key = (exp.name, v.name, paper)
        plan = self._plans.get(key)
        if plan is None:
            cfg = v.config
            plan = self._plans[key] = _VariantPlan(
                subject=route_subject(exp.name, v.name, paper=paper),
                step=f"route/{exp.name}/{v.name}",
                threshold=cfg.get("confidence_threshold"),
                size_multiplier=float(cfg.get("size_multiplier", 1.0)),
                extra={k: val for k, val in cfg.items() if k not in BUILTIN_CONFIG_KEYS},
            )
        return plan

    def _routed(
        self, sig: SignalEmitted, exp: Experiment, v: VariantSpec, unit_key: str, paper: bool
    ) -> tuple[str, SignalRouted]:
        """The routed signal and its subject; built field by field (not `Event.new`) because
        this is the hot path. Its id is derived from the signal and the variant, so a
        redelivered signal yields the same route."""
        plan = self._plan(exp, v, paper)
        side = sig.side
        if plan.threshold is not None and sig.confidence < plan.threshold:
            side = "flat"
        now = self.clock.now_ns() if self.clock is not None else time.time_ns()
        return plan.subject, SignalRouted(
            event_id=derived_event_id(sig.event_id, plan.step),
            ts_event=sig.ts_event,
            ts_init=now,
            causation_id=sig.event_id,
            correlation_id=sig.correlation_id or sig.event_id,
            symbol=sig.symbol,
            signal_id=sig.signal_id,
            experiment=exp.name,
            variant=v.name,
            release_id=v.release_id,
            unit_key=unit_key,
            side=side,
            confidence=sig.confidence,
            size_multiplier=plan.size_multiplier,
            paper=paper,
            price=sig.price,
            config=plan.extra,
        )

    def unit_key(self, exp: Experiment, sig: SignalEmitted) -> str | None:
        if exp.unit == "signal_id":
            return sig.signal_id
        if exp.unit == "symbol":
            return sig.symbol
        account = sig.extra.get("account")
        return account if isinstance(account, str) and account else None

    def route(self, sig: SignalEmitted, raw: bytes | None = None) -> RoutePlan:
        """The deliveries and log records for one signal (no I/O)."""
        exp = self._experiment_for(sig.symbol)
        key = self.unit_key(exp, sig) if exp is not None else None
        idx = exp.variant_index(key) if exp is not None and key is not None else None
        if exp is None or key is None or idx is None:
            if exp is not None and key is None:
                self.unroutable += 1
            self.passed += 1
            return RoutePlan([(PASSTHROUGH_SUBJECT, raw if raw is not None else encode(sig))], [])
        self.routed += 1
        if exp.shadow:
            plan = RoutePlan([], [])
            for v in exp.variants:
                subject, routed = self._routed(sig, exp, v, key, v.name != exp.champion)
                plan.deliveries.append((subject, encode(routed)))
                plan.records.append(routed)
            return plan
        v = exp.variants[idx]
        subject, routed = self._routed(sig, exp, v, key, False)
        records: list[Event] = [routed]
        if exp.unit != "signal_id" and key not in exp.assigned:
            exp.assigned[key] = v.name
            records.append(assignment_event(exp.assignment(key, idx), clock=self.clock))
        return RoutePlan([(subject, encode(routed))], records)

    def route_table(self) -> RouteTable:
        """The running experiments as a native `RouteTable` (rebuilt after lifecycle changes):
        the same plans `route` uses, in the book's order (`ExperimentBook.running_for`)."""
        self._refresh()
        if self._table is None:
            running = self.book.running()
            specs = []
            for exp in running:
                variants = []
                for v in exp.variants:
                    paper = exp.shadow and v.name != exp.champion
                    plan = self._plan(exp, v, paper)
                    threshold = None if plan.threshold is None else float(plan.threshold)
                    config = msgspec.msgpack.encode(plan.extra)
                    variants.append(
                        (v.name, v.release_id, plan.subject, paper, plan.step, threshold,
                         plan.size_multiplier, config)
                    )  # fmt: skip
                specs.append(
                    (exp.name, exp.symbol, exp.unit, exp.seed, [v.weight for v in exp.variants],
                     exp.coverage, exp.shadow, variants, list(exp.assigned))
                )  # fmt: skip
            max_payload = self.log.nc.max_payload if self.log is not None else 1 << 20
            self._table = RouteTable(specs, PASSTHROUGH_SUBJECT, max_payload)
            self._table_experiments = running
        return self._table

    def _take_chunk(self, chunk: RouteChunk, now: int, records: RouteRecords) -> None:
        """Fold a native chunk's counts, routes and first assignments into ``records``."""
        self.routed += chunk.routed
        self.passed += chunk.passed
        self.unroutable += chunk.unroutable
        records.deliveries += chunk.deliveries
        records.add_encoded(chunk.routes, chunk.n_routes, chunk.first, chunk.last, now)
        for ei, key, vi in chunk.new_units:
            exp = self._table_experiments[ei]
            exp.assigned[key] = exp.variants[vi].name
            records.others.append(assignment_event(exp.assignment(key, vi), clock=self.clock))

    # ------------------------------------------------------------------------ I/O

    async def follow_experiments(self) -> None:
        """Keep ``book`` current: subscribe to experiment events, then replay the stream (a
        live echo of a replayed event is a no-op)."""
        buffered: list[Event] = []
        ready = False

        async def on_msg(msg: Any) -> None:
            try:
                ev = decode(msg.data)
            except DataError as exc:
                log.warning("router: undecodable experiment event on %s: %s", msg.subject, exc)
                return
            if ready:
                self._apply_book(ev)
            else:
                buffered.append(ev)

        self._book_sub = await self.log.nc.subscribe(subject_filter("experiment"), cb=on_msg)
        async for chunk in self.log.replay_batches("EXPERIMENTS"):
            for rec in chunk:
                self._apply_book(rec.event)
        for ev in buffered:
            self._apply_book(ev)
        ready = True

    def _apply_book(self, ev: Event) -> None:
        try:
            self.book.apply(ev)
        except Exception as exc:  # a lifecycle event the projection refuses: log, keep routing
            log.error("router: experiment event %s not applied: %s", ev.event_id, exc)

    async def deliver(self, signals: Sequence[tuple[SignalEmitted, bytes | None]]) -> RouteRecords:
        """Route and publish a batch (one `publish` per delivery); returns what it stores."""
        records = RouteRecords()
        for sig, raw in signals:
            await self._send(self.route(sig, raw), records)
        return records

    async def _send(self, plan: RoutePlan, records: RouteRecords) -> None:
        """Publish one routed signal's deliveries and keep its records."""
        for subject, payload in plan.deliveries:
            await self.log.nc.publish(subject, payload)
        records.add_plan(plan)

    async def deliver_raw(
        self, consumer: DurableConsumer, msgs: list[Msg], writer: FrameWriter
    ) -> RouteRecords:
        """Route and publish a batch of raw messages natively, in order: runs of messages the
        native table takes go out as one write of frames; any other message (another event
        type, a payload msgspec must judge, a redelivery past ``max_deliver``) goes through
        `DurableConsumer.deliveries` (decode, dead-letter) and `route`, in its place."""
        table = self.route_table()
        records = RouteRecords()
        i, n = 0, len(msgs)
        while i < n:
            now = self.clock.now_ns() if self.clock is not None else time.time_ns()
            chunk = table.route(msgs, i, consumer.max_deliver, now)
            await writer.write(chunk.frames, chunk.deliveries, chunk.payload_bytes)
            self._take_chunk(chunk, now, records)
            i = chunk.stop
            if i < n:
                for d in await consumer.deliveries([msgs[i]]):
                    await self._deliver_one(consumer, d, records)
                i += 1
        return records

    async def _deliver_one(
        self, consumer: DurableConsumer, d: Delivered, records: RouteRecords
    ) -> None:
        """The Python path for one delivered message: route it and publish its deliveries. A
        routing error is deterministic (a retry would fail the same way), so the message is
        dead-lettered with it rather than redelivered; publishing errors propagate."""
        if not isinstance(d.event, SignalEmitted):
            return  # (the consumer's filter makes this rare): nothing to route
        try:
            plan = self.route(d.event, d.msg.data)
        except Exception as exc:
            await consumer.dead_letter(d, exc)
            return
        await self._send(plan, records)

    async def handle_batch(self, signals: Sequence[tuple[SignalEmitted, bytes | None]]) -> int:
        """Route, deliver and record a batch; returns the number of deliveries."""
        records = await self.deliver(signals)
        events = records.events(self.name, self.clock)
        if events:
            await self.log.append_many(events)
        return records.deliveries

    async def run(
        self,
        stop: asyncio.Event,
        *,
        durable: str = "ab-router",
        batch: int = 512,
        poll_s: float = 0.25,
        deliver: str = "new",
        persist_interval_s: float = PERSIST_INTERVAL_S,
    ) -> None:
        """Consume `SignalEmitted` until ``stop`` is set.

        Deliveries go out as soon as a batch is routed. Records and acks are batched further:
        the records of the batches routed within ``persist_interval_s`` (or up to ``batch``
        routes) are appended as one `SignalsRouted`, then those signals are acked with one
        cumulative ack, in the background while later batches are routed (up to
        ``PERSISTS_IN_FLIGHT`` such appends at once), so persisting never delays routing and
        costs the server one write and one ack per interval rather than per fetched batch.
        Acks go out in order: a group is acked only after every earlier group was stored. If
        records fail to append, the error ends `run` and nothing later is acked, so the unacked
        signals are redelivered on restart: routing is at least once (a crash may deliver up to
        one interval's signals twice, with the same derived ids), records are stored once.
        """
        if persist_interval_s < 0:
            raise ValueError(f"persist_interval_s must be >= 0, got {persist_interval_s}")
        if self._book_sub is None:
            await self.follow_experiments()
        self.name = durable
        consumer = await self.log.durable(
            durable,
            subject_filter_for_type(SignalEmitted),
            deliver="new" if deliver == "new" else "all",
            max_ack_pending=max(10_000, batch * 4),
            ack_all=True,
        )
        writer = (
            FrameWriter(self.log.nc) if self.native and FrameWriter.supported(self.log.nc) else None
        )
        self.ready.set()
        in_flight: deque[asyncio.Task[None]] = deque()

        async def persist(
            records: RouteRecords, group: list[Msg], before: asyncio.Task[None] | None
        ) -> None:
            events = records.events(self.name, self.clock)
            if events:
                await self.log.append_many(events)
            if before is not None:
                await before  # never ack past a group that is not stored yet
            last = next((m for m in reversed(group) if not m.is_acked), None)
            if last is not None:  # (dead-lettered messages were terminated already)
                await last.ack()  # ack-all consumer: acks the whole group

        async def flush() -> None:
            nonlocal pending, group, since
            while in_flight and (in_flight[0].done() or len(in_flight) >= PERSISTS_IN_FLIGHT):
                await in_flight.popleft()  # raises if that group failed
            before = in_flight[-1] if in_flight else None
            in_flight.append(asyncio.create_task(persist(pending, group, before)))
            pending, group, since = RouteRecords(), [], 0.0

        pending, group, since = RouteRecords(), [], 0.0  # routed, not yet stored and acked
        try:
            while not stop.is_set():
                wait = poll_s
                if group:
                    wait = max(0.0, since + persist_interval_s - time.monotonic())
                if writer is not None:
                    msgs = await consumer.next_raw(batch, timeout=wait)
                    if msgs:
                        pending.merge(await self.deliver_raw(consumer, msgs, writer))
                else:
                    items = await consumer.next_batch(batch, timeout=wait)
                    msgs = [d.msg for d in items]
                    for d in items:
                        await self._deliver_one(consumer, d, pending)
                if msgs:
                    since = since or time.monotonic()
                    group += msgs
                if group and (
                    time.monotonic() - since >= persist_interval_s or pending.n_routes >= batch
                ):
                    await flush()
            if group:
                await flush()
            while in_flight:
                await in_flight.popleft()
        finally:
            await consumer.close()

    async def close(self) -> None:
        if self._book_sub is not None:
            with contextlib.suppress(Exception):
                await self._book_sub.unsubscribe()
            self._book_sub = None


__all__ = [
    "LIVE_FILTER",
    "PAPER_FILTER",
    "PASSTHROUGH_SUBJECT",
    "ROUTE_PREFIX",
    "RoutePlan",
    "SignalRouter",
    "route_subject",
]
