"""`Engine`: what a trading engine calls to put its signals, fills, outcomes, metrics and feature
samples into the log, ask for a retrain, and read its risk parameters.

Why: an engine should not hand-build events, compute metrics on an undocumented scale, or lose
what it produced when NATS is briefly down. Every call builds the event (validated: a bad field is
a `DataError` naming it, raised in the caller), drops it if its event id was already sent
(dedup), and queues it; one background task sends the queue in batches, pipelined (publishes go
out without waiting for each ack; acks are matched by reply subject; up to ``batches_in_flight``
batches wait for their acks at once, so the server stores one while the engine sends the next),
so the engine's hot path never waits on the network.

Delivery
    A batch JetStream did not acknowledge (NATS down, a timeout, a leader election) goes to the
    on-disk `Spool`, in order, and everything after it too until the spool is empty again; the
    spool is sent oldest first once the log answers. JetStream dedups by ``Nats-Msg-Id`` (the
    event id), so a batch stored before the failure is not stored twice. The connection retries
    forever (``max_reconnect_attempts = -1``): an outage of any length ends in delivery.
Backpressure
    At most ``max_pending`` events wait in memory; a producer past it waits for room (async) or
    blocks (`SyncEngine`) for at most ``put_timeout_s``, then gets `EngineBackpressure`. A full
    spool (``spool_max_bytes``) stops the sender, so producers wait: nothing is dropped.
Metrics computed for you
    `outcome` keeps each symbol's last ``metrics_window`` net returns; `metrics` without figures
    reports them (`rolling_metrics`): ``sharpe`` = mean / sd (ddof 1) of those per-trade returns
    x sqrt(``periods_per_year``), the gate's annualisation (`autoopt.validation.metrics`): pass
    the bars per year of the timeframe the engine trades, one trade per bar is then exactly the
    gate's per-bar scale. Also ``hit_rate``, ``mean_return``, ``total_return``,
    ``max_drawdown`` (of compounded equity) and ``n_trades``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import numpy as np

from autoopt.client.spool import Spool, SpoolFull
from autoopt.clock import Clock, SystemClock
from autoopt.errors import AutooptError, DataError
from autoopt.events import (
    Event,
    FeatureBatch,
    Fill,
    MetricsReported,
    RetrainRequested,
    RiskParamsUpdated,
    SignalEmitted,
    TradeOutcome,
    decode,
    encode,
)
from autoopt.subjects import stream_name_for_subject, subject_filter_for_type, subject_for

log = logging.getLogger("autoopt.client.engine")
T = TypeVar("T")
MSG_ID = "Nats-Msg-Id"


class EngineBackpressure(AutooptError):
    """The engine's queue stayed full for ``put_timeout_s``: the log cannot keep up."""


class _Acks:
    """The acks of one pipelined batch, by index: True stored, False refused, None unanswered."""

    def __init__(self, n: int) -> None:
        self.results: list[bool | None] = [None] * n
        self.left = n
        self.done = asyncio.Event()
        if n == 0:
            self.done.set()


class _Ids:
    """UUIDv7 event ids (the layout of `autoopt.ids.new_event_id`: time-sortable, strictly
    increasing per engine) whose 62 random bits are a per-engine random start plus a counter:
    one `os.urandom` per engine instead of one per event, on the engine's hot path."""

    _MASK = (1 << 62) - 1

    def __init__(self) -> None:
        self._last = 0
        self._rand = int.from_bytes(os.urandom(8), "big") & self._MASK

    def new(self, ns: int) -> str:
        ms, rem = divmod(ns, 1_000_000)
        stamp = (ms << 12) | (rem * 4096 // 1_000_000)
        if stamp <= self._last:
            stamp = self._last + 1
        self._last = stamp
        self._rand = (self._rand + 1) & self._MASK
        value = (((stamp >> 12) & ((1 << 48) - 1)) << 80) | (0x7 << 76) \
            | ((stamp & 0xFFF) << 64) | (0b10 << 62) | self._rand
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def rolling_metrics(returns: np.ndarray, periods_per_year: float) -> dict[str, float]:
    """The figures `Engine.metrics` reports from net per-trade returns (see module doc)."""
    r = np.asarray(returns, dtype=np.float64)
    n = int(r.size)
    out: dict[str, float] = {"n_trades": float(n)}
    if n == 0:
        return out
    sd = float(r.std(ddof=1)) if n > 1 else 0.0
    out["sharpe"] = float(r.mean() / sd * math.sqrt(periods_per_year)) if sd > 0 else 0.0
    out["hit_rate"] = float(np.mean(r > 0))
    out["mean_return"] = float(r.mean())
    equity = np.concatenate(([1.0], np.cumprod(1.0 + r)))
    out["total_return"] = float(equity[-1] - 1.0)
    out["max_drawdown"] = float(np.max(1.0 - equity / np.maximum.accumulate(equity)))
    return out


_FAST_PUBLISH = True
"""Write a batch's HPUB commands as one buffer (see `_publish_batch`)."""


async def _publish_batch(nc: Any, payloads: list[bytes], events: list[Event] | None,
                         reply_base: str) -> None:
    """Publish a batch as ready-made ``HPUB`` protocol commands in one write: the same bytes
    nats-py's `publish` would send (a ``Nats-Msg-Id`` header, the reply subject the ack comes
    back on), without its per-message header building, which dominated the engine's send path.
    Uses nats-py's internal writer (``_send_command`` / ``_flush_pending``, nats-py 2.x); only
    called while connected."""
    parts: list[bytes] = []
    for i, data in enumerate(payloads):
        ev = events[i] if events is not None else decode(data)
        hdr = b"NATS/1.0\r\nNats-Msg-Id: " + ev.event_id.encode() + b"\r\n\r\n"
        parts.append(b"HPUB %s %s%d %d %d\r\n" % (subject_for(ev).encode(),
                     reply_base.encode(), i, len(hdr), len(hdr) + len(data)))
        parts.append(hdr)
        parts.append(data)
        parts.append(b"\r\n")
    nc.stats["out_msgs"] += len(payloads)
    await nc._send_command(b"".join(parts))  # noqa: SLF001
    await nc._flush_pending()  # noqa: SLF001


class _AckTap:
    """Hands the engine's ack messages to it straight from nats-py's parser, so an ack costs a
    subject split and a byte search instead of a `Msg`, a queue put and a callback task step
    each (measured: most of the send path's CPU at tens of thousands of events/s).

    Why safe: it wraps the connection's ``_process_msg`` (nats-py 2.x internal, called by the
    parser for every MSG) for one subscription id only and passes every other message on to
    what was there before (other subscriptions of a shared connection, other engines' taps).
    Without that internal the subscription's own callback takes the acks (the same handler)."""

    def __init__(self, nc: Any, sid: int, handle: Callable[[bytes, bytes], None]) -> None:
        self._nc, self._sid, self._handle = nc, sid, handle
        self._inner = nc._process_msg  # noqa: SLF001
        nc._process_msg = self._process  # noqa: SLF001

    @staticmethod
    def available(nc: Any, sub: Any) -> bool:
        return hasattr(nc, "_process_msg") and isinstance(getattr(sub, "_id", None), int)

    async def _process(self, sid: int, subject: bytes, reply: bytes, data: bytes,
                       headers: bytes | None) -> None:
        if sid == self._sid:
            self._nc.stats["in_msgs"] += 1
            self._handle(subject, data)
            return
        await self._inner(sid, subject, reply, data, headers)

    def remove(self) -> None:
        """Stop taking acks; unwrap when nothing wrapped this tap since."""
        self._sid = -1
        if self._nc.__dict__.get("_process_msg") != self._process:
            return  # another tap wraps this one: it unwinds this one when it goes
        inner = self._inner
        while isinstance(tap := getattr(inner, "__self__", None), _AckTap) and tap._sid == -1:
            inner = tap._inner  # skip taps removed while wrapped
        if getattr(inner, "__self__", None) is self._nc:
            del self._nc._process_msg  # noqa: SLF001  (back to the class's method)
        else:
            self._nc._process_msg = inner  # noqa: SLF001


class Engine:
    """Async producer client; see the module docstring. Open with `Engine.open(config)` or
    build on an open `EventLog`; `close` sends what is queued (or spools it)."""

    def __init__(
        self,
        event_log: Any,
        *,
        spool_dir: str | Path,
        source: str = "engine",
        batch_size: int = 1024,
        batches_in_flight: int = 4,
        flush_interval_s: float = 0.005,
        max_pending: int = 100_000,
        put_timeout_s: float = 30.0,
        ack_timeout_s: float = 5.0,
        spool_max_bytes: int = 256 << 20,
        dedup_window: int = 200_000,
        metrics_window: int = 200,
        periods_per_year: float = 365.0 * 24 * 4,
        clock: Clock | None = None,
    ) -> None:
        self.log = event_log
        self.source = source
        self.spool = Spool(spool_dir, max_bytes=spool_max_bytes)
        self.batch_size = batch_size
        self.batches_in_flight = max(1, int(batches_in_flight))
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self.put_timeout_s = put_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.periods_per_year = periods_per_year
        self.metrics_window = metrics_window
        self.clock = clock or SystemClock()
        self._queue: deque[Event] = deque()
        self._id_gen = _Ids()
        self._in_flight = 0
        self._room = asyncio.Event()
        self._room.set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._dedup_window = dedup_window
        self._returns: dict[str, deque[float]] = {}
        self._acks: dict[int, _Acks] = {}
        self._ack_prefix: str | None = None
        self._ack_sub: Any = None
        self._ack_tap: _AckTap | None = None
        self._batch_no = 0
        self._task: asyncio.Task[None] | None = None
        self._sending: dict[asyncio.Task[None], list[Event]] = {}
        """Batches sent and waiting for their acks (at most ``batches_in_flight``)."""
        self._stalled: SpoolFull | None = None
        self._requeue: list[Event] = []
        """Events of batches the full spool refused, in queue order, for the queue's head."""
        self._closing = False
        self._owns_log = False
        self.sent = 0
        """Events JetStream acknowledged (duplicates included)."""
        self.spooled = 0
        """Events written to the spool (each is sent later)."""
        self.duplicates = 0
        """Calls dropped because their event id was already sent."""

    @classmethod
    async def open(cls, config: Any, *, spool_dir: str | Path | None = None,
                   **kw: Any) -> Engine:
        """An engine on the configured log (reconnecting forever), spooling under
        ``<data_dir>/spool/<source>`` unless ``spool_dir`` is given."""
        from autoopt.log import EventLog

        settings = msgspec.structs.replace(config.nats, max_reconnect_attempts=-1)
        event_log = await EventLog.connect(settings, data_dir=config.data_dir)
        source = kw.get("source", "engine")
        where = spool_dir or Path(config.data_dir) / "spool" / source
        self = cls(event_log, spool_dir=where, **kw)
        self._owns_log = True
        await self.start()
        return self

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    # ------------------------------------------------------------------ producing

    async def publish(self, event: Event) -> Event:
        """Queue any event (validated now); a second call with the same event id is dropped."""
        event.validate()
        return await self._enqueue(event)

    async def _enqueue(self, event: Event) -> Event:
        """Queue an event built (and so validated) by this engine's own methods."""
        eid = event.event_id
        if eid in self._seen:
            self.duplicates += 1
            return event
        while len(self._queue) >= self.max_pending:
            self._room.clear()
            try:
                async with asyncio.timeout(self.put_timeout_s):
                    await self._room.wait()
            except TimeoutError:
                raise EngineBackpressure(
                    f"engine queue full ({self.max_pending} events) for {self.put_timeout_s}s: "
                    f"the log is not keeping up (spool {self.spool.bytes} bytes)"
                ) from None
        self._remember(eid)
        self._queue.append(event)
        self._idle.clear()
        if len(self._queue) >= self.batch_size:
            self._wake.set()
        return event

    def _remember(self, eid: str) -> None:
        self._seen.add(eid)
        self._seen_order.append(eid)
        if len(self._seen_order) > self._dedup_window:
            self._seen.discard(self._seen_order.popleft())

    def _now(self) -> int:
        return self.clock.now_ns()

    def _ids(self, event_id: str | None, ts_event: int | None = None) -> dict[str, Any]:
        now = self._now()
        return {"event_id": event_id or self._id_gen.new(now),
                "ts_event": now if ts_event is None else int(ts_event), "ts_init": now}

    async def signal(self, symbol: str, side: str, confidence: float, *,
                     signal_id: str | None = None, price: float | None = None,
                     release_id: str | None = None, horizon_s: float | None = None,
                     extra: Mapping[str, Any] | None = None, event_id: str | None = None,
                     ts_event: int | None = None) -> SignalEmitted:
        """A signal ("long" | "short" | "flat"); ``signal_id`` defaults to the event id (pass
        your own to join fills and outcomes to it). ``ts_event``: the time of the bar it was
        decided on (Unix ns; default now): the paper trader enters at the next bar's open."""
        f = self._ids(event_id, ts_event)
        ev = SignalEmitted(**f, symbol=symbol, signal_id=signal_id or f["event_id"], side=side,
                           confidence=float(confidence), price=price, release_id=release_id,
                           horizon_s=horizon_s, extra=dict(extra or {}))
        return await self._enqueue(ev)  # type: ignore[return-value]

    async def fill(self, symbol: str, trade_id: str, side: str, qty: float, price: float, *,
                   fee: float = 0.0, fee_currency: str = "", order_id: str = "",
                   signal_id: str | None = None, liquidity: str = "",
                   event_id: str | None = None) -> Fill:
        ev = Fill(**self._ids(event_id), symbol=symbol, trade_id=trade_id, side=side,
                  qty=float(qty), price=float(price), fee=float(fee), fee_currency=fee_currency,
                  order_id=order_id, signal_id=signal_id, liquidity=liquidity)
        return await self._enqueue(ev)  # type: ignore[return-value]

    async def outcome(self, symbol: str, trade_id: str, side: str, qty: float,
                      entry_price: float, exit_price: float, *, fees: float = 0.0,
                      signal_id: str | None = None, release_id: str | None = None,
                      experiment: str | None = None, variant: str | None = None,
                      entry_ts: int = 0, exit_ts: int = 0,
                      event_id: str | None = None) -> TradeOutcome:
        """A closed trade; pnl and the net return are computed (long: exit/entry - 1; short:
        entry/exit - 1; fees in quote currency come off both) and kept for `metrics`."""
        qty, entry, exit_ = float(qty), float(entry_price), float(exit_price)
        if not (entry > 0 and exit_ > 0):
            raise DataError(f"outcome {trade_id}: entry_price and exit_price must be > 0")
        sign = -1.0 if side in ("short", "sell") else 1.0
        gross = sign * (exit_ - entry) * abs(qty)
        pnl = gross - float(fees)
        notional = abs(qty) * entry
        ret = pnl / notional if notional > 0 else 0.0
        ev = TradeOutcome(**self._ids(event_id), symbol=symbol, trade_id=trade_id, side=side,
                          qty=qty, entry_price=entry, exit_price=exit_, fees=float(fees),
                          pnl=pnl, return_=ret, signal_id=signal_id, release_id=release_id,
                          experiment=experiment, variant=variant, entry_ts=int(entry_ts),
                          exit_ts=int(exit_ts))
        before = self.duplicates
        out = await self._enqueue(ev)
        if self.duplicates == before:
            window = self._returns.setdefault(symbol, deque(maxlen=self.metrics_window))
            window.append(ret)
        return out  # type: ignore[return-value]

    def rolling(self, symbol: str) -> dict[str, float]:
        """The figures `metrics` would report now for ``symbol`` (see module doc)."""
        return rolling_metrics(np.fromiter(self._returns.get(symbol, ()), float),
                               self.periods_per_year)

    async def metrics(self, symbol: str, window: str = "rolling",
                      metrics: Mapping[str, float] | None = None, *,
                      release_id: str | None = None, variant: str | None = None,
                      event_id: str | None = None) -> MetricsReported:
        """Report figures; without ``metrics``, the rolling ones computed from `outcome`."""
        figures = dict(metrics) if metrics is not None else self.rolling(symbol)
        ev = MetricsReported(**self._ids(event_id), symbol=symbol, window=window,
                             metrics={k: float(v) for k, v in figures.items()},
                             release_id=release_id, variant=variant)
        return await self._enqueue(ev)  # type: ignore[return-value]

    async def features(self, symbol: str, feature_set: str, ts: Any,
                       columns: Mapping[str, Any], *, feature_set_version: str = "",
                       ) -> FeatureBatch:
        """A sampled batch of live feature rows (the drift detectors compare it with the
        release's training reference)."""
        ev = FeatureBatch.from_arrays(symbol=symbol, feature_set=feature_set, ts=ts,
                                      columns=dict(columns), clock=self.clock,
                                      feature_set_version=feature_set_version)
        return await self._enqueue(ev)  # type: ignore[return-value]

    async def request_retrain(self, symbol: str, reason: str = "manual", *,
                              requested_by: str | None = None,
                              trigger: Mapping[str, Any] | None = None) -> RetrainRequested:
        """Ask the service for a retrain (any reason is recorded and honoured)."""
        ev = RetrainRequested(**self._ids(None), symbol=symbol, reason=reason,
                              trigger=dict(trigger or {}),
                              requested_by=requested_by or self.source)
        return await self._enqueue(ev)  # type: ignore[return-value]

    async def current_params(self, symbol: str) -> dict[str, float] | None:
        """The latest `RiskParamsUpdated` params of ``symbol`` in the log (None: none yet)."""
        subject = subject_filter_for_type(RiskParamsUpdated, symbol)
        try:
            msg = await self.log.js.get_last_msg(stream_name_for_subject(subject), subject)
        except Exception as exc:  # nats NotFoundError: no params recorded yet
            if type(exc).__name__ == "NotFoundError":
                return None
            raise
        ev = decode(msg.data)
        return dict(ev.params) if isinstance(ev, RiskParamsUpdated) else None

    # ------------------------------------------------------------------ sending

    async def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued is stored or spooled; True when the spool is empty
        too (all of it is in the log)."""
        self._wake.set()
        async with asyncio.timeout(timeout):
            await self._idle.wait()
        return self.spool.empty and not self._queue

    async def drained(self, timeout: float = 60.0, poll_s: float = 0.05) -> None:
        """Wait until the queue and the spool are empty and no batch is in flight (every event
        stored)."""
        async with asyncio.timeout(timeout):
            while self._queue or not self.spool.empty or self._in_flight:
                self._wake.set()
                await asyncio.sleep(poll_s)

    @property
    def connected(self) -> bool:
        return bool(self.log.nc.is_connected)

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if not self._sending:
                    self._idle.set()
                    if self._closing and (self.spool.empty or not self.connected):
                        return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.flush_interval_s if self.spool.empty
                                               else 0.2):
                        await self._wake.wait()
            elif len(self._queue) < self.batch_size and not self._closing:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.flush_interval_s):
                        await self._wake.wait()
            try:
                if self._stalled is not None or (not self.spool.empty and self.connected):
                    await self._settle()  # in order: what is in flight ends first
                if self._stalled is not None:
                    exc, self._stalled = self._stalled, None
                    self._queue.extendleft(reversed(self._requeue))  # producers wait
                    self._requeue = []
                    raise exc
                if not self.spool.empty and self.connected:
                    await self._drain_spool()
                if self._queue:
                    while len(self._sending) >= self.batches_in_flight:
                        await asyncio.wait(list(self._sending),
                                           return_when=asyncio.FIRST_COMPLETED)
                    batch = [self._queue.popleft()
                             for _ in range(min(self.batch_size, len(self._queue)))]
                    self._room.set()
                    self._in_flight += len(batch)
                    before = next(reversed(self._sending), None)
                    task = asyncio.create_task(self._deliver_batch(batch, before))
                    self._sending[task] = batch
            except asyncio.CancelledError:
                raise
            except SpoolFull as exc:
                log.error("%s; holding producers until the log answers", exc)
                await asyncio.sleep(0.5)
            except Exception:
                log.exception("engine sender")
                await asyncio.sleep(0.2)

    async def _deliver_batch(self, batch: list[Event], before: asyncio.Task[None] | None) -> None:
        """One batch of the queue, sent while up to ``batches_in_flight`` - 1 others wait for
        their acks: the server stores one while the engine builds and sends the next. They go
        out in queue order on one connection, so the log stores them in that order; what was
        not acknowledged is spooled after the batch before it has spooled its own."""
        payloads = [encode(e) for e in batch]
        try:
            if not self.spool.empty or not self.connected:
                acked = [False] * len(batch)  # whole, behind the older events already spooled
            else:
                acked = await self._send(payloads, batch)
            if before is not None:
                await asyncio.wait([before])
            left = [i for i, ok in enumerate(acked) if not ok]
            if left:
                self._to_spool([payloads[i] for i in left], [batch[i] for i in left],
                               requeue=False)
        except SpoolFull as exc:
            self._stalled = exc  # the sender pauses and puts _requeue back (see _run)
        except Exception:
            log.exception("engine sender")
        finally:
            self._in_flight -= len(batch)
            self._sending.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
            self._wake.set()

    async def _settle(self) -> None:
        """Wait until no batch is in flight."""
        while self._sending:
            await asyncio.wait(list(self._sending))

    def _to_spool(self, payloads: list[bytes], events: list[Event] | None, *,
                  requeue: bool = True) -> None:
        try:
            self.spool.write(payloads)
        except SpoolFull:
            if not requeue:  # a batch in flight: back in order via _requeue
                self._requeue += events if events is not None else [decode(p) for p in payloads]
            elif events is not None:  # back to the head of the queue: producers wait
                self._queue.extendleft(reversed(events))
            else:
                self._queue.extendleft(reversed([decode(p) for p in payloads]))
            raise
        self.spooled += len(payloads)

    async def _drain_spool(self) -> None:
        while not self.spool.empty and self.connected:
            oldest = self.spool.oldest()
            if oldest is None:
                return
            path, payloads = oldest
            left: list[bytes] = []
            for i in range(0, len(payloads), self.batch_size):
                chunk = payloads[i : i + self.batch_size]
                acked = await self._send(chunk, None)
                left += [p for p, ok in zip(chunk, acked, strict=True) if not ok]
                if left:
                    left += payloads[i + self.batch_size :]
                    break
            if left:
                self.spool.replace(path, left)
                return
            self.spool.remove(path)
            log.info("engine spool: %d events delivered from %s", len(payloads), path.name)

    async def _on_ack_msg(self, msg: Any) -> None:
        self._on_ack(msg.subject.encode(), msg.data)

    def _on_ack(self, subject: bytes, data: bytes) -> None:
        """One JetStream publish ack (``<inbox>.<batch>.<index>``): stored unless it is an
        error or a status message without data (no responders)."""
        _, bid, idx = subject.rsplit(b".", 2)
        acks = self._acks.get(int(bid))
        if acks is None:
            return
        i = int(idx)
        if acks.results[i] is not None:
            return
        ok = bool(data) and b'"error"' not in data
        acks.results[i] = ok
        acks.left -= 1
        if acks.left == 0:
            acks.done.set()

    async def _send(self, payloads: list[bytes], events: list[Event] | None) -> list[bool]:
        """Publish pipelined; which payloads JetStream acknowledged within ``ack_timeout_s``."""
        nc = self.log.nc
        if self._ack_sub is None:
            self._ack_prefix = nc.new_inbox()
            self._ack_sub = await nc.subscribe(f"{self._ack_prefix}.>", cb=self._on_ack_msg)
            if _FAST_PUBLISH and _AckTap.available(nc, self._ack_sub):
                self._ack_tap = _AckTap(nc, self._ack_sub._id, self._on_ack)  # noqa: SLF001
        self._batch_no += 1
        bid = self._batch_no
        acks = self._acks[bid] = _Acks(len(payloads))
        base = f"{self._ack_prefix}.{bid}."
        try:
            if _FAST_PUBLISH and hasattr(nc, "_send_command"):
                await _publish_batch(nc, payloads, events, base)
            else:
                for i, data in enumerate(payloads):
                    ev = events[i] if events is not None else decode(data)
                    await nc.publish(subject_for(ev), data, reply=base + str(i),
                                     headers={MSG_ID: ev.event_id})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ack_timeout_s):
                    await acks.done.wait()
        except Exception as exc:  # disconnected mid-batch, outbound buffer full...
            log.warning("engine: batch of %d not sent: %s", len(payloads), exc)
        finally:
            self._acks.pop(bid, None)
        ok = [bool(r) for r in acks.results]
        self.sent += sum(ok)
        return ok

    async def close(self, timeout: float = 30.0) -> None:
        """Send (or spool) what is queued, then stop; the spool is kept for the next start."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self._task)
            if not self._task.done():
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            unacked = [e for batch in self._sending.values() for e in batch]
            for task in list(self._sending):  # unacknowledged: keep on disk (dedup by id)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._queue.extendleft(reversed(self._requeue + unacked))
            self._requeue = []
            if self._queue:  # what the sender could not take: keep it on disk
                with contextlib.suppress(SpoolFull):
                    self._to_spool([encode(e) for e in self._queue], list(self._queue))
                    self._queue.clear()
        if self._ack_tap is not None:
            self._ack_tap.remove()
        if self._ack_sub is not None:
            with contextlib.suppress(Exception):
                await self._ack_sub.unsubscribe()
        if self._owns_log:
            await self.log.close()


class SyncEngine:
    """`Engine` for engines that are not asyncio: runs one in a background thread's event loop;
    every method blocks until the event is queued (not until it is stored)."""

    def __init__(self, config: Any, **kw: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="autoopt-engine",
                                        daemon=True)
        self._thread.start()
        self.engine: Engine = self._call(Engine.open(config, **kw))

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.engine, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr

        def call(*args: Any, **kw: Any) -> Any:
            return self._call(attr(*args, **kw))

        return call

    def close(self, timeout: float = 30.0) -> None:
        try:
            self._call(self.engine.close(timeout))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def __enter__(self) -> SyncEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Engine", "EngineBackpressure", "SyncEngine", "rolling_metrics"]
