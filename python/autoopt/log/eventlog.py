"""The event log: append, replay and consume autoopt events on NATS JetStream.

Why: the log is autoopt's source of truth, so writes must be idempotent (``Nats-Msg-Id`` =
``event_id``), decisions must be race-free (expected last subject sequence), bulk writes and
replays must be fast, and live consumers must never lose or loop on a message.

* `EventLog.append` / `append_expecting` / `append_many` write; a duplicate id is reported in
  `AppendResult.duplicate`, not stored twice.
* `EventLog.replay` reads a stream or subject filter by sequence and/or time range, through an
  ephemeral pull consumer fetched in large batches; times are the log's storage times (Unix ns).
* `EventLog.durable` / `consume` are live durable pull consumers with explicit ack
  (`DurableConsumer.next_batch` keeps pull requests outstanding, `PullFeed`, for low latency).
  A message that cannot be decoded, or whose handler fails on its last allowed delivery, or that was never
  acknowledged within ``max_deliver`` deliveries (a crashing or hung consumer), is appended to
  ``autoopt.deadletter.message.<stream>`` as a `DeadLettered` event with its raw bytes and the
  error, then terminated.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError
from nats.nuid import NUID

from autoopt.errors import (
    DataError,
    DuplicateEventError,
    EventLogError,
    SequenceConflictError,
)
from autoopt.events import Event, decode, encode
from autoopt.log.connect import NatsSettings, dial
from autoopt.log.deadletter import dead_letter_event
from autoopt.log.pullfeed import Collector, PullFeed, status_of
from autoopt.log.retry import Backoff, consumer_gone, is_transient, retrying
from autoopt.log.server import EmbeddedServer
from autoopt.log.streams import StreamChange, ensure_streams
from autoopt.redact import redact
from autoopt.subjects import STREAMS, stream_name_for_subject, subject_for

log = logging.getLogger("autoopt.log")

MSG_ID = "Nats-Msg-Id"
EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
_ERR_WRONG_LAST_SEQ = 10071
_REPLAY_BATCH = 20_000
_REPLAY_MAX_BYTES = 32 * 1024 * 1024

TimeArg = int | dt.datetime | None
Handler = Callable[[Event, "Delivery"], Awaitable[None]]


class AppendResult(msgspec.Struct, frozen=True):
    """Where an append landed; ``duplicate`` means the id was already stored at ``seq``."""

    seq: int
    stream: str
    duplicate: bool = False


class Record(msgspec.Struct, frozen=True):
    """A replayed event with its place in the log (``time_ns``: when the log stored it)."""

    seq: int
    subject: str
    time_ns: int
    event: Event


class Delivery(msgspec.Struct, frozen=True):
    """Delivery metadata of a message from a durable consumer."""

    stream: str
    consumer: str
    subject: str
    seq: int
    consumer_seq: int
    num_delivered: int
    num_pending: int
    time_ns: int


class StreamStats(msgspec.Struct, frozen=True):
    """One stream as `EventLog.info` reports it (zeros for a stream that does not exist)."""

    name: str
    subjects: list[str]
    exists: bool
    messages: int = 0
    bytes: int = 0
    first_seq: int = 0
    last_seq: int = 0
    consumers: int = 0
    max_age_s: float = 0.0
    replicas: int = 0


class ReplayStats:
    """What a tolerant replay skipped. Pass one as ``stats=`` to `EventLog.replay_batches`,
    `replay_records` or `replay` and read it after (or during) the replay.

    Why: one bad record (a foreign publisher, an older schema) must not stop every reader of
    a stream; readers skip it, and this says how many and where the first one was."""

    __slots__ = ("skipped", "first_seq", "first_subject", "first_error")

    def __init__(self) -> None:
        self.skipped = 0
        self.first_seq = 0
        self.first_subject = ""
        self.first_error = ""

    def skip(self, seq: int, subject: str, error: str) -> None:
        if not self.skipped:
            self.first_seq, self.first_subject, self.first_error = seq, subject, error
        self.skipped += 1

    def summary(self, stream: str) -> str:
        """One line for operators (empty when nothing was skipped)."""
        if not self.skipped:
            return ""
        return (
            f"skipped {self.skipped} undecodable record(s) of {stream}; first at seq "
            f"{self.first_seq} ({self.first_subject}): {self.first_error}"
        )


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _PubAck(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: _ApiError | None = None


_pub_ack_decoder = msgspec.json.Decoder(_PubAck)


class _AckBatch:
    """Acks of one `append_many` call, filled in by the shared ack subscription."""

    __slots__ = ("results", "left", "outstanding", "done", "room", "room_at")

    def __init__(self, n: int) -> None:
        self.results: list[AppendResult | str | None] = [None] * n
        self.left = n
        self.outstanding = 0
        self.done = asyncio.Event()
        self.room = asyncio.Event()
        self.room_at = 0

    def set(self, i: int, value: AppendResult | str) -> None:
        if self.results[i] is not None:
            return
        self.results[i] = value
        self.left -= 1
        self.outstanding -= 1
        if self.outstanding <= self.room_at:
            self.room.set()
        if self.left == 0:
            self.done.set()


def _ns(value: TimeArg, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise DataError(f"{name} must be timezone-aware, got naive datetime {value}")
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise DataError(f"{name} must be int nanoseconds or an aware datetime, got {value!r}")


def delivery_fields(reply: str) -> tuple[str, str, int, int, int, int, int]:
    """(stream, consumer, delivered, stream seq, consumer seq, time ns, pending) of a JS ack
    subject, in both the v1 (9 tokens) and v2 (domain + account hash) layouts."""
    t = reply.split(".")
    if len(t) == 9:
        return t[2], t[3], int(t[4]), int(t[5]), int(t[6]), int(t[7]), int(t[8])
    if len(t) >= 11 and t[0] == "$JS" and t[1] == "ACK":
        return t[4], t[5], int(t[6]), int(t[7]), int(t[8]), int(t[9]), int(t[10])
    raise EventLogError(f"not a JetStream delivery (reply subject {reply!r})")


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


async def _log_nats_error(exc: Exception) -> None:
    log.warning("nats: %s", redact(_describe(exc)))


class Delivered:
    """A message fetched from a durable consumer: its typed event, metadata and ack controls."""

    __slots__ = ("msg", "event", "info")

    def __init__(self, msg: Msg, event: Event, info: Delivery) -> None:
        self.msg = msg
        self.event = event
        self.info = info

    async def ack(self) -> None:
        """Done: the message is not delivered again."""
        await self.msg.ack()

    async def nak(self, delay: float | None = None) -> None:
        """Redeliver (after ``delay`` seconds)."""
        await self.msg.nak(delay=delay)

    async def in_progress(self) -> None:
        """Still working: restart the ack_wait timer."""
        await self.msg.in_progress()


class DurableConsumer:
    """A durable pull consumer on one stream; see `EventLog.durable`."""

    def __init__(
        self,
        log_: EventLog,
        stream: str,
        name: str,
        psub: Any,
        max_deliver: int,
        ack_wait: float,
        retry_delay_s: float,
    ) -> None:
        self._log = log_
        self.stream = stream
        self.name = name
        self._psub = psub
        self.max_deliver = max_deliver
        self.ack_wait = ack_wait
        self.retry_delay_s = retry_delay_s
        self._feed: PullFeed | None = None
        # how to re-create the consumer on the server (set by `EventLog.durable`)
        self.ensure: Callable[[], Awaitable[Any]] | None = None
        self._backoff = Backoff()
        self.failures = 0
        """Consecutive failed pulls (503, no responders, consumer gone); 0 once one works."""
        self.last_error: str | None = None

    async def fetch(self, batch: int = 1, timeout: float = 1.0) -> list[Delivered]:
        """Up to ``batch`` messages (waiting at most ``timeout`` s; empty list if none).

        Undecodable messages and messages past ``max_deliver`` are dead-lettered here and never
        returned.
        """
        try:
            msgs = await self._psub.fetch(batch, timeout=timeout)
        except (nats.errors.TimeoutError, TimeoutError):
            self._recovered()
            return []
        except Exception as exc:
            if not (is_transient(exc) or consumer_gone(exc)):
                raise
            await self._stalled(_describe(exc), consumer_gone(exc), timeout)
            return []
        self._recovered()
        return await self.deliveries(msgs)

    def _recovered(self) -> None:
        if self.failures:
            log.info("consumer %s on %s pulls again", self.name, self.stream)
        self.failures = 0
        self.last_error = None
        self._backoff.reset()

    async def _stalled(self, error: str, gone: bool, limit_s: float) -> None:
        """A pull failed for a passing reason (leader election, reconnect, the consumer was
        deleted or lost): wait the retry schedule (at most ``limit_s``), and every few failures,
        or at once when it is known to be gone, re-create the consumer (idempotent)."""
        self.failures += 1
        self.last_error = error
        if self.failures == 1 or self.failures % 50 == 0:
            log.warning(
                "consumer %s on %s cannot pull (%d tries): %s",
                self.name, self.stream, self.failures, error,
            )
        if self.ensure is not None and (gone or self.failures % 5 == 0):
            try:
                async with asyncio.timeout(self._log.settings.request_timeout_s):
                    await self.ensure()
            except Exception as exc:
                self.last_error = f"{error}; re-creating the consumer failed: {_describe(exc)}"
        await self._backoff.sleep(limit_s)

    async def next_batch(self, max_n: int = 512, timeout: float = 1.0) -> list[Delivered]:
        """The messages delivered since the last call (at most ``max_n``), waiting at most
        ``timeout`` s for the first. Unlike `fetch`, pull requests stay outstanding between
        calls (`PullFeed`), so each message is handed over as soon as it is stored: use this on
        latency-sensitive paths. Do not mix it with `fetch` on one `DurableConsumer`."""
        return await self.deliveries(await self.next_raw(max_n, timeout))

    async def next_raw(self, max_n: int = 512, timeout: float = 1.0) -> list[Msg]:
        """`next_batch` without decoding: the raw messages, for consumers that read payloads
        natively (the A/B router). Pass what they cannot handle to `deliveries`, which decodes
        it and dead-letters the undecodable and the over-delivered."""
        if self._feed is None:
            self._feed = PullFeed(self._log.nc, self._psub._nms, batch=max(1, max_n))
            await self._feed.start()
        msgs = await self._feed.take(max_n, timeout)
        if msgs or self._feed.failing is None:
            self._recovered()
        elif self._feed.failures > self.failures:
            # the feed spaces its own re-requests; only count, and re-create when needed
            self.failures = self._feed.failures
            self.last_error = self._feed.failing
            gone = "consumer deleted" in self._feed.failing.lower()
            if self.ensure is not None and (gone or self.failures % 5 == 0):
                try:
                    async with asyncio.timeout(self._log.settings.request_timeout_s):
                        await self.ensure()
                except Exception as exc:
                    self.last_error = f"{self._feed.failing}; re-creating failed: {_describe(exc)}"
        return msgs

    async def deliveries(self, msgs: list[Msg]) -> list[Delivered]:
        """Decode fetched messages; dead-letter the undecodable and the over-delivered."""
        out: list[Delivered] = []
        for msg in msgs:
            stream, consumer, delivered, sseq, cseq, ts, pending = delivery_fields(msg.reply)
            info = Delivery(
                stream=stream,
                consumer=consumer,
                subject=msg.subject,
                seq=sseq,
                consumer_seq=cseq,
                num_delivered=delivered,
                num_pending=pending,
                time_ns=ts,
            )
            if delivered > self.max_deliver:
                await self._dead_letter(
                    msg,
                    info,
                    f"not acknowledged after {self.max_deliver} deliveries "
                    "(the consumer crashed or its handler outlived ack_wait)",
                )
                continue
            try:
                event = decode(msg.data)
            except DataError as exc:
                await self._dead_letter(msg, info, _describe(exc))
                continue
            out.append(Delivered(msg, event, info))
        return out

    async def reject(self, delivered: Delivered, error: BaseException | str) -> bool:
        """The handler failed: redeliver after ``retry_delay_s``, or dead-letter the message if
        this was its last allowed delivery. Returns True if it was dead-lettered."""
        text = error if isinstance(error, str) else _describe(error)
        if delivered.info.num_delivered >= self.max_deliver:
            await self._dead_letter(delivered.msg, delivered.info, text, delivered.event)
            return True
        await delivered.msg.nak(delay=self.retry_delay_s)
        return False

    async def dead_letter(self, delivered: Delivered, error: BaseException | str) -> None:
        """The handler can never succeed on this message (a retry would fail the same way):
        dead-letter it now with the reason. Use this rather than `reject` on ack-all
        consumers, where a later cumulative ack would also ack a message waiting to be
        redelivered."""
        text = error if isinstance(error, str) else _describe(error)
        await self._dead_letter(delivered.msg, delivered.info, text, delivered.event)

    async def _dead_letter(
        self, msg: Msg, info: Delivery, error: str, event: Event | None = None
    ) -> None:
        letter = dead_letter_event(
            stream=info.stream,
            subject=info.subject,
            seq=info.seq,
            consumer=self.name,
            error=error,
            payload=msg.data,
            headers=msg.headers,
            deliveries=info.num_delivered,
            cause=event,
        )
        await self._log.append(letter)
        await msg.term()
        log.warning(
            "dead-lettered %s seq %d from consumer %s: %s", info.subject, info.seq, self.name, error
        )

    async def info(self) -> Any:
        """The server's ConsumerInfo (pending, ack pending, redelivered...)."""
        return await self._psub.consumer_info()

    async def close(self) -> None:
        """Stop fetching; the durable consumer stays on the server."""
        if self._feed is not None:
            await self._feed.close()
            self._feed = None
        with contextlib.suppress(Exception):
            await self._psub.unsubscribe()


class EventLog:
    """Connection to the JetStream event log. Build it with `await EventLog.connect(...)`."""

    def __init__(
        self, nc: Client, settings: NatsSettings, server: EmbeddedServer | None = None
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=settings.request_timeout_s)
        self.settings = settings
        self._server = server
        self._ack_prefix: str | None = None
        self._ack_sub: Any = None
        self._batches: dict[str, _AckBatch] = {}
        self._batch_counter = 0

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def connect(
        cls,
        settings: NatsSettings | None = None,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        ensure: bool = True,
    ) -> EventLog:
        """Connect to ``settings.urls``, or with none, to the embedded server of ``data_dir``
        (started or reused); then create or update the streams unless ``ensure`` is False."""
        settings = settings or NatsSettings()
        server: EmbeddedServer | None = None
        urls: list[str] | None = None
        if settings.embedded:
            if data_dir is None:
                raise EventLogError(
                    "no NATS URL configured (nats.urls) and no data_dir for the embedded server"
                )
            server = EmbeddedServer(Path(data_dir))
            urls = [await asyncio.to_thread(server.start)]
        try:
            # one bound (nats.connect_timeout_s) on every attempt, TLS and auth; redacted errors
            nc = await dial(settings, urls, error_cb=_log_nats_error)
            if not nc._server_info.get("jetstream", False):  # the INFO the server greeted with
                where = redact(str(nc.connected_url.geturl() if nc.connected_url else urls))
                await nc.close()
                raise EventLogError(
                    f"the NATS server at {where} has JetStream disabled: autoopt's event log "
                    "needs it (start nats-server with -js, or add `jetstream {}` to its config)")
            self = cls(nc, settings, server)
            if ensure:
                try:
                    await self.ensure_streams()
                except BaseException:
                    await nc.close()
                    raise
            return self
        except BaseException:
            if server is not None:
                await asyncio.to_thread(server.close)
            raise

    async def close(self) -> None:
        """Flush, disconnect, and release the embedded server (stopped if we were its last user)."""
        with contextlib.suppress(Exception):
            if self._nc.is_connected:
                await self._nc.flush(timeout=2)
        with contextlib.suppress(Exception):
            await self._nc.close()
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(server.close)

    async def __aenter__(self) -> EventLog:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def nc(self) -> Client:
        """The underlying nats-py client (for features this class does not wrap)."""
        return self._nc

    @property
    def js(self) -> Any:
        """The underlying JetStream context."""
        return self._js

    @property
    def _retry_window_s(self) -> float:
        """How long appends and consumer creation retry transient failures (a leader election
        takes seconds; each try is bounded by the request timeout)."""
        return max(30.0, 3 * self.settings.request_timeout_s)

    @property
    def url(self) -> str:
        """The server URL currently connected to."""
        cur = self._nc.connected_url
        return cur.geturl() if cur is not None else ""

    async def ensure_streams(self, *, apply: bool = False) -> list[StreamChange]:
        """Create missing autoopt streams; differences of existing ones are reported, and only
        applied (the safe ones) with ``apply`` (idempotent; `autoopt.log.streams`)."""
        return await ensure_streams(self._js, self.settings, apply=apply)

    # ---------------------------------------------------------------------- write

    async def _publish(self, event: Event, headers: dict[str, str]) -> AppendResult:
        """Publish and wait for the stream's ack. 503 / no responders / an unacknowledged publish
        (a leader election, a reconnect) are retried on the `retrying` schedule for
        `_retry_window_s`: the ``Nats-Msg-Id`` header makes a retry idempotent."""
        event.validate()  # DataError naming type and field, before anything is sent
        subject = subject_for(event)
        data = encode(event)
        timeout = self.settings.request_timeout_s

        async def once() -> Any:
            try:
                return await self._js.publish(subject, data, headers=headers, timeout=timeout)
            except NoStreamResponseError as exc:
                if not await self._stream_exists(subject):
                    raise EventLogError(
                        f"no stream captures {subject} (were the streams created? "
                        "EventLog.ensure_streams)"
                    ) from exc
                raise  # the stream exists: it has no leader right now

        ack = await retrying(
            once,
            what=f"append of {event.type_tag()} {event.event_id} to {subject}",
            deadline_s=self._retry_window_s,
        )
        return AppendResult(seq=ack.seq, stream=ack.stream, duplicate=bool(ack.duplicate))

    async def _stream_exists(self, subject: str) -> bool:
        """False only when the server says the subject's stream does not exist."""
        try:
            await self._js.stream_info(stream_name_for_subject(subject))
        except NotFoundError:
            return False
        except Exception:  # unknown (no leader, timeout): assume it exists and retry
            return True
        return True

    async def append(self, event: Event, *, raise_on_duplicate: bool = False) -> AppendResult:
        """Store one event with ``Nats-Msg-Id = event_id``; a duplicate is not stored again and is
        reported (or raised as DuplicateEventError when ``raise_on_duplicate``)."""
        try:
            result = await self._publish(event, {MSG_ID: event.event_id})
        except APIError as exc:
            raise EventLogError(
                f"append of {event.type_tag()} {event.event_id} failed: {exc.description} "
                f"(code {exc.err_code})"
            ) from exc
        if result.duplicate and raise_on_duplicate:
            raise DuplicateEventError(
                f"event {event.event_id} ({event.type_tag()}) is already stored at "
                f"{result.stream} seq {result.seq}"
            )
        return result

    async def append_expecting(self, event: Event, last_subject_seq: int) -> AppendResult:
        """Store ``event`` only if the last message on its subject is at ``last_subject_seq``
        (0: the subject is empty). Losing the race raises SequenceConflictError; retrying the same
        event while it is still the subject's last message reports ``duplicate`` instead."""
        if last_subject_seq < 0:
            raise DataError(f"last_subject_seq must be >= 0, got {last_subject_seq}")
        headers = {MSG_ID: event.event_id, EXPECTED_LAST_SUBJECT_SEQ: str(last_subject_seq)}
        try:
            return await self._publish(event, headers)
        except APIError as exc:
            if exc.err_code == _ERR_WRONG_LAST_SEQ:
                # JetStream checks the expected sequence before dedup: a retry of an append
                # that already won would look like a lost race. It is the subject's last
                # message then; report it as the duplicate it is.
                last = await self._last_msg(subject_for(event))
                if last is not None and (last.headers or {}).get(MSG_ID) == event.event_id:
                    return AppendResult(
                        seq=int(last.seq or 0), stream=str(last.stream or ""), duplicate=True
                    )
                actual = (exc.description or "").rsplit(":", 1)[-1].strip()
                raise SequenceConflictError(
                    f"append of {event.type_tag()} {event.event_id} to {subject_for(event)} "
                    f"expected the subject's last sequence to be {last_subject_seq}, but it is "
                    f"{actual or 'different'}: another writer appended first; re-read and decide "
                    "again"
                ) from exc
            raise EventLogError(
                f"append of {event.type_tag()} {event.event_id} failed: {exc.description} "
                f"(code {exc.err_code})"
            ) from exc

    async def _on_ack(self, msg: Msg) -> None:
        prefix = self._ack_prefix
        if prefix is None:
            return
        bid, _, idx = msg.subject[len(prefix) + 1 :].partition(".")
        batch = self._batches.get(bid)
        if batch is None:
            return
        i = int(idx)
        status = status_of(msg)
        if status is not None:
            batch.set(
                i, "no stream captures the subject" if status == "503" else f"status {status}"
            )
            return
        try:
            ack = _pub_ack_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            batch.set(i, f"unreadable ack: {exc}")
            return
        if ack.error is not None:
            batch.set(i, f"{ack.error.description} (code {ack.error.err_code})")
        else:
            batch.set(i, AppendResult(seq=ack.seq, stream=ack.stream, duplicate=ack.duplicate))

    async def append_many(
        self, events: Iterable[Event], *, window: int | None = None
    ) -> list[AppendResult]:
        """Store many events, pipelined: publishes go out without waiting for each ack (at most
        ``window`` unacknowledged), acks are matched by reply subject. Results are in input order.
        Events that were not acknowledged in time are retried one by one (dedup makes that
        safe); any that still fail raise EventLogError naming the count and the first cause."""
        items = list(events)
        if not items:
            return []
        for event in items:  # all valid or none sent: DataError naming type and field
            event.validate()
        window = window or self.settings.max_pending_acks
        if self._ack_sub is None:
            self._ack_prefix = self._nc.new_inbox()
            self._ack_sub = await self._nc.subscribe(f"{self._ack_prefix}.>", cb=self._on_ack)
        self._batch_counter += 1
        bid = str(self._batch_counter)
        batch = _AckBatch(len(items))
        self._batches[bid] = batch
        reply_base = f"{self._ack_prefix}.{bid}."
        publish = self._nc.publish
        timeout = self.settings.request_timeout_s
        try:
            for i, event in enumerate(items):
                if batch.outstanding >= window:
                    batch.room_at = window // 2
                    batch.room.clear()
                    await self._wait(batch.room, timeout, batch)
                batch.outstanding += 1
                await publish(
                    subject_for(event),
                    encode(event),
                    reply=reply_base + str(i),
                    headers={MSG_ID: event.event_id},
                )
            # no flush() here: publish already kicked nats-py's flusher, and a PING/PONG round
            # trip per call would only delay the acks we wait for anyway
            await self._wait(batch.done, timeout, batch)
        finally:
            self._batches.pop(bid, None)
        results: list[AppendResult] = []
        errors: list[str] = []
        for i, res in enumerate(batch.results):
            if res is None:
                try:
                    res = await self.append(items[i])
                except EventLogError as exc:
                    res = str(exc)
            if isinstance(res, str):
                errors.append(f"{items[i].event_id} -> {subject_for(items[i])}: {res}")
            else:
                results.append(res)
        if errors:
            raise EventLogError(f"{len(errors)} of {len(items)} appends failed; first: {errors[0]}")
        return results

    @staticmethod
    async def _wait(flag: asyncio.Event, timeout: float, batch: _AckBatch) -> None:
        """Wait for ``flag`` while acks keep arriving; give up after ``timeout`` s of silence."""
        while not flag.is_set():
            before = batch.left
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await flag.wait()
            if not flag.is_set() and batch.left == before:
                return

    async def _last_msg(self, subject: str) -> Any:
        stream = stream_name_for_subject(subject)
        try:
            msg = await self._js.get_last_msg(stream, subject)
        except NotFoundError:
            return None
        if msg.stream is None:
            msg.stream = stream
        return msg

    async def last_subject_sequence(self, subject: str) -> int:
        """Stream sequence of the last message on ``subject`` (0 if there is none); pass it to
        `append_expecting` to append only if nothing was written there since."""
        msg = await self._last_msg(subject)
        return 0 if msg is None else int(msg.seq or 0)

    # ----------------------------------------------------------------------- read

    def _target(self, target: str | Sequence[str]) -> tuple[str, list[str]]:
        parts = [target] if isinstance(target, str) else list(target)
        if not parts:
            raise DataError("replay target is empty: give a stream name or subject filters")
        if len(parts) == 1 and "." not in parts[0]:
            return parts[0], []
        streams = {stream_name_for_subject(p) for p in parts}
        if len(streams) != 1:
            raise DataError(f"subject filters {parts} span several streams {sorted(streams)}")
        return streams.pop(), parts

    async def replay_batches(
        self,
        target: str | Sequence[str],
        *,
        start_seq: int | None = None,
        end_seq: int | None = None,
        start_time: TimeArg = None,
        end_time: TimeArg = None,
        batch: int = _REPLAY_BATCH,
        strict: bool = False,
        stats: ReplayStats | None = None,
    ) -> AsyncIterator[list[Record]]:
        """Like `replay_records`, in lists (one per network batch): the fastest way to read.

        A record that does not decode or validate as an event is skipped and counted in
        ``stats`` (and in one warning line when the replay ends); ``strict=True`` raises
        DataError naming it instead."""
        stream, filters = self._target(target)
        stats = stats if stats is not None else ReplayStats()
        skipped_before = stats.skipped
        t0, t1 = _ns(start_time, "start_time"), _ns(end_time, "end_time")
        if start_seq is not None and t0 is not None:
            raise DataError("give start_seq or start_time, not both")
        if start_seq is not None and start_seq < 1:
            raise DataError(f"start_seq must be >= 1, got {start_seq}")
        cfg = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=max(30.0, self.settings.request_timeout_s * 3),
            mem_storage=True,
            num_replicas=1,
        )
        if start_seq is not None:
            cfg.deliver_policy, cfg.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, start_seq
        elif t0 is not None:
            cfg.deliver_policy = DeliverPolicy.BY_START_TIME
            cfg.opt_start_time = dt.datetime.fromtimestamp(t0 // 1000 / 1e6, tz=dt.UTC)
        if len(filters) == 1:
            cfg.filter_subject = filters[0]
        elif filters:
            cfg.filter_subjects = filters
        cfg.name = NUID().next().decode()
        try:  # a leader election answers 503 for a while: retried, like appends
            info = await retrying(lambda: self._js.add_consumer(stream, cfg),
                                  what=f"replay of {stream}", deadline_s=self._retry_window_s)
        except NotFoundError as exc:
            raise EventLogError(f"stream {stream} does not exist") from exc
        except APIError as exc:
            raise EventLogError(
                f"cannot replay {stream} {filters or ''}: {exc.description} (code {exc.err_code})"
            ) from exc
        if info.num_pending == 0:
            with contextlib.suppress(Exception):
                await self._js.delete_consumer(stream, cfg.name)
            return
        inbox = self._nc.new_inbox()
        col = Collector()
        sub = await self._nc.subscribe(
            inbox, cb=col.cb, pending_msgs_limit=-1, pending_bytes_limit=-1
        )
        next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{cfg.name}"
        timeout = self.settings.request_timeout_s
        request = msgspec.json.encode(
            {"batch": batch, "max_bytes": _REPLAY_MAX_BYTES, "no_wait": True}
        )
        last_cseq = 0
        unavailable = Backoff()
        unavailable_since: float | None = None
        try:
            while True:
                await self._nc.publish(next_subject, request, reply=inbox)
                got = 0
                finished = request_over = False
                while not (finished or request_over):
                    msgs = await col.take(timeout)
                    if not msgs:
                        raise EventLogError(
                            f"replay of {stream} stalled: no message for {timeout}s after "
                            f"consumer sequence {last_cseq}"
                        )
                    out: list[Record] = []
                    for msg in msgs:
                        status = status_of(msg)
                        if status is not None:
                            if status in ("404", "408"):
                                finished = True  # nothing more to read
                                break
                            desc = msg.headers.get("Description", "") if msg.headers else ""
                            if status == "409" and "Batch Completed" in desc:
                                continue  # a fulfilled request; already ended by its count
                            if status == "409" and "MaxBytes" in desc:
                                if got == 0:
                                    raise EventLogError(
                                        f"replay of {stream}: a message after consumer sequence "
                                        f"{last_cseq} is larger than {_REPLAY_MAX_BYTES} bytes"
                                    )
                                request_over = True  # the request's byte budget is spent
                                continue
                            if status == "100":
                                continue
                            if status == "503":  # no responders: a leader is being elected
                                now = time.monotonic()
                                unavailable_since = unavailable_since or now
                                if now - unavailable_since > self._retry_window_s:
                                    raise EventLogError(
                                        f"replay of {stream}: unavailable (503) for "
                                        f"{self._retry_window_s:g}s after consumer sequence "
                                        f"{last_cseq}")
                                await unavailable.sleep()
                                request_over = True  # ask again from where it stopped
                                break
                            raise EventLogError(f"replay of {stream} failed: {status} {desc}")
                        if unavailable_since is not None:
                            unavailable_since = None
                            unavailable.reset()
                        _, _, _, sseq, cseq, ts, pending = delivery_fields(msg.reply)
                        if cseq != last_cseq + 1:
                            raise EventLogError(
                                f"replay of {stream} lost messages: consumer sequence jumped "
                                f"from {last_cseq} to {cseq}"
                            )
                        last_cseq = cseq
                        got += 1
                        if (end_seq is not None and sseq > end_seq) or (t1 is not None and ts > t1):
                            finished = True
                            break
                        if t0 is None or ts >= t0:
                            try:
                                event = decode(msg.data)
                            except DataError as exc:
                                if strict:
                                    raise DataError(
                                        f"{stream} seq {sseq} ({msg.subject}): {exc}"
                                    ) from exc
                                stats.skip(sseq, msg.subject, str(exc))
                            else:
                                out.append(Record(sseq, msg.subject, ts, event))
                        if pending == 0:
                            finished = True
                            break
                        if got >= batch:
                            request_over = True
                    if out:
                        yield out
                if finished:
                    return
        finally:
            if stats.skipped > skipped_before:
                log.warning("replay of %s %s", " ".join(filters) or stream, stats.summary(stream))
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            with contextlib.suppress(Exception):
                await self._js.delete_consumer(stream, cfg.name)

    async def replay_records(
        self,
        target: str | Sequence[str],
        *,
        start_seq: int | None = None,
        end_seq: int | None = None,
        start_time: TimeArg = None,
        end_time: TimeArg = None,
        strict: bool = False,
        stats: ReplayStats | None = None,
    ) -> AsyncIterator[Record]:
        """Events of a stream (``"MODELS"``) or subject filters (``"autoopt.model.*.BTCUSDT"``,
        all in one stream), in log order, with sequence and storage time. Bounds are inclusive;
        the replay ends at the last message stored when it reaches the end. Bad records are
        skipped and counted in ``stats`` unless ``strict`` (see `replay_batches`)."""
        async for chunk in self.replay_batches(
            target, start_seq=start_seq, end_seq=end_seq, start_time=start_time, end_time=end_time,
            strict=strict, stats=stats,
        ):
            for record in chunk:
                yield record

    async def replay(
        self,
        target: str | Sequence[str],
        *,
        start_seq: int | None = None,
        end_seq: int | None = None,
        start_time: TimeArg = None,
        end_time: TimeArg = None,
        strict: bool = False,
        stats: ReplayStats | None = None,
    ) -> AsyncIterator[Event]:
        """The typed events of `replay_records`, without their metadata."""
        async for chunk in self.replay_batches(
            target, start_seq=start_seq, end_seq=end_seq, start_time=start_time, end_time=end_time,
            strict=strict, stats=stats,
        ):
            for record in chunk:
                yield record.event

    # --------------------------------------------------------------------- consume

    async def durable(
        self,
        name: str,
        subjects: str | Sequence[str],
        *,
        ack_wait: float = 30.0,
        max_deliver: int = 5,
        max_ack_pending: int = 1000,
        deliver: Literal["all", "new"] = "all",
        retry_delay_s: float = 1.0,
        ack_all: bool = False,
    ) -> DurableConsumer:
        """Create (or update) and bind a durable pull consumer with explicit ack.

        ``ack_all``: acking a message also acks every earlier one (one ack per processed batch,
        for consumers that handle a fetched batch in order and as a whole, like the A/B router).

        Instances sharing ``name`` share the work. A message is offered at most ``max_deliver``
        times to handlers; the server allows one more delivery, which only dead-letters it.
        """
        if max_deliver < 1:
            raise DataError(f"max_deliver must be >= 1, got {max_deliver}")
        if ack_wait <= 0:
            raise DataError(f"ack_wait must be > 0, got {ack_wait}")
        stream, filters = self._target(subjects)
        cfg = ConsumerConfig(
            name=name,
            durable_name=name,
            ack_policy=AckPolicy.ALL if ack_all else AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=max_deliver + 1,
            max_ack_pending=max_ack_pending,
            deliver_policy=DeliverPolicy.NEW if deliver == "new" else DeliverPolicy.ALL,
        )
        if len(filters) == 1:
            cfg.filter_subject = filters[0]
        elif filters:
            cfg.filter_subjects = filters
        async def ensure() -> Any:
            return await self._js.add_consumer(stream, cfg)

        try:
            # while the stream has no leader (election, a node down) creation answers 503
            await retrying(
                ensure,
                what=f"creating durable consumer {name!r} on {stream}",
                deadline_s=self._retry_window_s,
            )
        except APIError as exc:
            raise EventLogError(
                f"cannot create durable consumer {name!r} on {stream}: {exc.description} "
                f"(code {exc.err_code})"
            ) from exc
        psub = await self._js.pull_subscribe_bind(durable=name, stream=stream)
        consumer = DurableConsumer(self, stream, name, psub, max_deliver, ack_wait, retry_delay_s)
        consumer.ensure = ensure
        return consumer

    async def consume(
        self,
        durable: str,
        subjects: str | Sequence[str],
        handler: Handler,
        *,
        stop: asyncio.Event | None = None,
        ack_wait: float = 30.0,
        max_deliver: int = 5,
        batch: int = 32,
        poll_s: float = 1.0,
        deliver: Literal["all", "new"] = "all",
        retry_delay_s: float = 1.0,
    ) -> None:
        """Run ``await handler(event, delivery)`` for each message until ``stop`` is set (or the
        task is cancelled). Success acks; an exception naks for redelivery, and on the last
        delivery dead-letters. While a handler runs its message is kept in progress, so long
        jobs are not redelivered to another instance. Unhandled messages of a fetched batch are
        released for redelivery when stopping."""
        consumer = await self.durable(
            durable,
            subjects,
            ack_wait=ack_wait,
            max_deliver=max_deliver,
            deliver=deliver,
            retry_delay_s=retry_delay_s,
        )
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                items = await consumer.fetch(batch, timeout=poll_s)
                for k, item in enumerate(items):
                    if stop.is_set():
                        for rest in items[k:]:
                            with contextlib.suppress(Exception):
                                await rest.nak()
                        break
                    keepalive = asyncio.create_task(_keep_in_progress(item, ack_wait / 3))
                    try:
                        await handler(item.event, item.info)
                    except Exception as exc:
                        keepalive.cancel()
                        await _settle(consumer.reject(item, exc), item)
                        continue
                    finally:
                        keepalive.cancel()
                    await _settle(item.ack(), item)
        finally:
            await consumer.close()

    # ------------------------------------------------------------------------ info

    async def info(self) -> list[StreamStats]:
        """Message count, bytes and sequences of every autoopt stream."""
        out: list[StreamStats] = []
        for spec in STREAMS:
            try:
                si = await self._js.stream_info(spec.name)
            except NotFoundError:
                out.append(StreamStats(name=spec.name, subjects=spec.subjects, exists=False))
                continue
            st, cfg = si.state, si.config
            out.append(
                StreamStats(
                    name=spec.name,
                    subjects=list(cfg.subjects or []),
                    exists=True,
                    messages=st.messages,
                    bytes=st.bytes,
                    first_seq=st.first_seq,
                    last_seq=st.last_seq,
                    consumers=st.consumer_count,
                    max_age_s=float(cfg.max_age or 0.0),
                    replicas=int(cfg.num_replicas or 1),
                )
            )
        return out


async def _settle(step: Awaitable[Any], item: Delivered) -> None:
    """Ack / nak / dead-letter one message; a transient failure (reconnect, no leader) only
    logs: the message stays unacknowledged and is redelivered after ack_wait."""
    try:
        await step
    except Exception as exc:
        if not is_transient(exc) and not isinstance(exc, EventLogError):
            raise
        log.warning(
            "could not settle %s seq %d (it will be redelivered): %s",
            item.info.subject, item.info.seq, _describe(exc),
        )


async def _keep_in_progress(item: Delivered, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        with contextlib.suppress(Exception):
            await item.in_progress()


__all__ = [
    "AppendResult",
    "Delivered",
    "Delivery",
    "DurableConsumer",
    "EventLog",
    "Handler",
    "Record",
    "ReplayStats",
    "StreamStats",
]
