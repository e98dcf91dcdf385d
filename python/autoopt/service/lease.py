"""Job leases in a JetStream key-value bucket: a redelivered retrain never runs while its first
attempt is alive.

Why: the job consumer keeps a running job's message "in progress", but under heavy load those
signals can come late, JetStream then redelivers the job to another instance after
``ack_wait``, and the retrain would run twice at once. So before running, an instance
``create``s the key of the decision (only one creator wins); the owner refreshes it on a
heartbeat and marks it done at the end (or deletes it when the attempt failed, so the next
delivery may claim it). An instance that finds the key held by someone alive waits (its
message stays in progress meanwhile) until the key is done (then the job is acked), released
(then it claims it), or stale (then it takes it over).

Stale means either the owner has no liveness subscriber any more (its connection is gone: a
killed process is noticed at once, through NATS "no responders") or the entry's revision has
not changed for ``ttl_s`` on the waiter's own monotonic clock (a hung owner; no comparison of
clocks across hosts). A takeover is a compare-and-set on the revision, so one taker wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js.errors import (
    BucketNotFoundError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue

from autoopt.log import EventLog
from autoopt.log.retry import describe, is_transient, retrying

log = logging.getLogger(__name__)

BUCKET = "autoopt_jobs"
ALIVE_PREFIX = "_autoopt.jobs.alive"
"""Liveness subjects (outside every stream's ``autoopt.>`` subjects, so no stream answers)."""
DONE_CHECK_S = 2.0
"""How often a waiting instance reads the event log for the job's results (the lease it polls
every ``poll_s``)."""
KEEP_DONE_S = 7 * 86400.0
"""How long finished leases stay in the bucket (the bucket's max age; a heartbeat renews)."""

Claim = Literal["owned", "done", "unguarded"]
"""owned: run the job; done: an earlier attempt finished it (ack); unguarded: the bucket is
unreachable, run it as without leases (the results still dedup by id)."""


class LeaseRecord(msgspec.Struct, kw_only=True):
    owner: str
    attempt: int
    heartbeat_ns: int
    """When the owner last refreshed, by its injected clock (for people reading the bucket)."""
    done: bool = False


def _absent(exc: BaseException) -> bool:
    return isinstance(exc, (KeyNotFoundError, KeyDeletedError))


def _transient(exc: BaseException) -> bool:
    return not _absent(exc) and not isinstance(exc, KeyWrongLastSequenceError) and is_transient(exc)


class JobLeases:
    """Claim, refresh and finish the lease of each job (keyed by decision id)."""

    def __init__(
        self,
        event_log: EventLog,
        kv: KeyValue,
        *,
        ttl_s: float,
        instance_id: str | None = None,
        now_ns: Callable[[], int] = time.time_ns,
        poll_s: float = 0.5,
    ) -> None:
        self._log = event_log
        self._kv = kv
        self.ttl_s = ttl_s
        self.instance_id = instance_id or uuid.uuid4().hex
        self._now_ns = now_ns
        self._poll_s = poll_s
        self._window_s = max(5.0, 3 * event_log.settings.request_timeout_s)
        self._alive_sub: object | None = None

    @classmethod
    async def open(
        cls, event_log: EventLog, *, ttl_s: float, now_ns: Callable[[], int] = time.time_ns,
        instance_id: str | None = None, poll_s: float = 0.5,
    ) -> JobLeases:
        """Open (or create) the bucket, retrying what passes by itself, and subscribe this
        instance's liveness subject. Raises on failure (the caller falls back)."""
        js = event_log.js

        async def bucket() -> KeyValue:
            try:
                return await js.key_value(BUCKET)
            except BucketNotFoundError:
                from nats.js.api import KeyValueConfig

                return await js.create_key_value(KeyValueConfig(
                    bucket=BUCKET, history=1, ttl=KEEP_DONE_S, replicas=event_log.settings.replicas))

        window = max(30.0, 3 * event_log.settings.request_timeout_s)
        kv = await retrying(bucket, what=f"job lease bucket {BUCKET}", deadline_s=window)
        self = cls(event_log, kv, ttl_s=ttl_s, instance_id=instance_id, now_ns=now_ns, poll_s=poll_s)

        async def answer(msg: Msg) -> None:
            with contextlib.suppress(Exception):
                await msg.respond(b"alive")

        self._alive_sub = await event_log.nc.subscribe(f"{ALIVE_PREFIX}.{self.instance_id}", cb=answer)
        return self

    async def close(self) -> None:
        sub, self._alive_sub = self._alive_sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ KV calls

    async def _call(self, op: Callable[[], Awaitable[object]], what: str) -> object:
        return await retrying(op, what=what, deadline_s=self._window_s, transient=_transient)

    def _value(self, attempt: int, done: bool = False) -> bytes:
        return msgspec.json.encode(LeaseRecord(
            owner=self.instance_id, attempt=attempt, heartbeat_ns=self._now_ns(), done=done))

    async def _owner_gone(self, owner: str) -> bool:
        """True only when NATS says nobody subscribes the owner's liveness subject; a slow
        or missing answer counts as alive (the revision age catches a hung owner)."""
        if owner == self.instance_id:
            return False
        try:
            await self._log.nc.request(f"{ALIVE_PREFIX}.{owner}", b"", timeout=min(2.0, self.ttl_s))
        except nats.errors.NoRespondersError:
            return True
        except Exception:
            return False
        return False

    # ------------------------------------------------------------------ the protocol

    async def claim(self, key: str, attempt: int, is_done: Callable[[], Awaitable[bool]]) -> tuple[Claim, int]:
        """Wait until this instance owns ``key`` (returns its revision) or the job is done.
        ``is_done`` (the event log, the authority on completion, but costlier to read than the
        lease) is asked at most every ``DONE_CHECK_S`` while waiting."""
        seen: tuple[int, float] | None = None  # (revision, when first seen on our monotonic clock)
        asked = float("-inf")
        value = self._value(attempt)
        while True:
            try:
                rev = await self._call(lambda: self._kv.create(key, value), f"job lease {key}")
                return "owned", int(rev)  # type: ignore[call-overload]
            except KeyWrongLastSequenceError:
                pass  # held (or finished): look at it
            try:
                entry = await self._call(lambda: self._kv.get(key), f"job lease {key}")
            except Exception as exc:
                if _absent(exc):
                    continue  # released between our create and get: try again
                raise
            record = msgspec.json.decode(entry.value or b"{}", type=LeaseRecord)  # type: ignore[attr-defined]
            revision = int(entry.revision)  # type: ignore[attr-defined]
            if record.done:
                return "done", revision
            if seen is None:
                log.info("job %s is held by %s (attempt %d): waiting for it", key, record.owner,
                         record.attempt)
            if seen is None or seen[0] != revision:
                seen = (revision, time.monotonic())
            stale = time.monotonic() - seen[1] > self.ttl_s
            if stale or await self._owner_gone(record.owner):
                try:
                    rev = await self._call(functools.partial(self._kv.update, key, value, last=revision),
                                           f"job lease {key}")
                except KeyWrongLastSequenceError:
                    continue  # another instance took it over first
                log.warning("took over the job lease %s from %s (attempt %d; owner %s)", key,
                            record.owner, record.attempt, "stale" if stale else "gone")
                return "owned", int(rev)  # type: ignore[call-overload]
            if time.monotonic() - asked >= DONE_CHECK_S:
                asked = time.monotonic()
                if await is_done():
                    return "done", revision
            await asyncio.sleep(self._poll_s)

    async def heartbeat(self, key: str, attempt: int, revision: int) -> None:
        """Refresh the lease every ttl/4 until cancelled; stops (with a warning) when another
        instance took it over. A failed refresh is retried at the next beat."""
        every = self.ttl_s / 4
        while True:
            await asyncio.sleep(every)
            try:
                revision = int(await asyncio.wait_for(  # type: ignore[call-overload]
                    self._kv.update(key, self._value(attempt), last=revision), timeout=every))
            except KeyWrongLastSequenceError:
                log.warning("lost the job lease %s (another instance took it over)", key)
                return
            except Exception as exc:
                log.warning("could not refresh the job lease %s: %s", key, describe(exc))

    async def finish(self, key: str, attempt: int, done: bool) -> None:
        """Mark the lease done (redeliveries then ack at once) or release it (a failed attempt:
        the next delivery may claim it). A failure here is only logged."""
        try:
            if done:
                await self._call(lambda: self._kv.put(key, self._value(attempt, done=True)),
                                 f"job lease {key}")
            else:
                await self._call(lambda: self._kv.delete(key), f"job lease {key}")
        except Exception as exc:
            log.warning("could not %s the job lease %s: %s", "finish" if done else "release", key,
                        describe(exc))


__all__ = ["ALIVE_PREFIX", "BUCKET", "Claim", "JobLeases", "LeaseRecord"]
