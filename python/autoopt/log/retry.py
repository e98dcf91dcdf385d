"""Bounded, jittered retries of JetStream calls that fail for a passing reason.

Why: on a cluster, a node kill or a leader election makes JetStream answer "503 no
responders", time out, or report a missing leader for a few seconds; a client reconnecting
after a restart fails its requests meanwhile. None of that may end a service loop, but a
retry must neither hammer the servers (every client retrying in lockstep) nor wait forever.

The schedule: attempt ``n`` (from 0) waits ``d/2 + uniform(0, d/2)`` seconds with
``d = min(cap_s, base_s * 2**n)``: with the defaults 0.05 s, 0.1, 0.2, 0.4, 0.8, 1.6, then
2 s (1-2 s jittered) for every later attempt. `retrying` gives up after ``deadline_s`` in
all (each attempt is itself bounded by its request timeout) and raises `EventLogError`
naming what failed and the last cause.
"""

from __future__ import annotations

import asyncio
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError, ServiceUnavailableError

from autoopt.errors import EventLogError

T = TypeVar("T")

BASE_S = 0.05
CAP_S = 2.0

# JetStream API error codes that mean "not now": no meta/stream leader, cluster not ready
_TRANSIENT_ERR_CODES = frozenset({10008, 10074, 10075, 10076, 10077})
_TRANSIENT_WORDS = ("leader", "temporarily unavailable", "not current", "no responders", "quorum")
_CONSUMER_NOT_FOUND = 10014


class Backoff:
    """Delays of the documented schedule; `reset` after a success."""

    __slots__ = ("base_s", "cap_s", "attempt")

    def __init__(self, base_s: float = BASE_S, cap_s: float = CAP_S) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0

    def next_delay(self) -> float:
        d = min(self.cap_s, self.base_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return d / 2 + random.uniform(0.0, d / 2)

    def reset(self) -> None:
        self.attempt = 0

    async def sleep(self, limit_s: float | None = None) -> None:
        """Wait the next delay (at most ``limit_s``)."""
        delay = self.next_delay()
        await asyncio.sleep(delay if limit_s is None else max(0.0, min(delay, limit_s)))


def describe(exc: BaseException) -> str:
    """One line naming the exception and its message."""
    return "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]


def consumer_gone(exc: BaseException) -> bool:
    """The consumer no longer exists on the server (deleted, or lost with its only node)."""
    err_code = getattr(exc, "err_code", None)
    text = str(getattr(exc, "description", None) or "").lower()
    if isinstance(exc, NotFoundError) and err_code in (None, _CONSUMER_NOT_FOUND):
        return err_code == _CONSUMER_NOT_FOUND or "consumer" in text
    if isinstance(exc, APIError) and getattr(exc, "code", None) == 409:
        return "consumer deleted" in text
    return False


def is_transient(exc: BaseException) -> bool:
    """True for failures that pass by themselves: timeouts, no responders / 503, no leader,
    a connection being re-established."""
    if isinstance(
        exc,
        (
            TimeoutError,
            nats.errors.TimeoutError,
            nats.errors.NoRespondersError,
            NoStreamResponseError,
            ServiceUnavailableError,  # 503 status (no responders); nats-py leaves code None
            nats.errors.ConnectionReconnectingError,
            nats.errors.StaleConnectionError,
            nats.errors.OutboundBufferLimitError,
            nats.errors.UnexpectedEOF,
            ConnectionError,
        ),
    ):
        return True
    if isinstance(exc, APIError):
        # total: some subclasses (nats-py's KeyNotFoundError, KeyDeletedError) never set
        # code, err_code or description, so read each one without assuming it is there
        code, err_code = getattr(exc, "code", None), getattr(exc, "err_code", None)
        if code in (503, 408) or err_code in _TRANSIENT_ERR_CODES:
            return True
        text = str(getattr(exc, "description", None) or "").lower()
        return any(word in text for word in _TRANSIENT_WORDS)
    return False


async def retrying(
    op: Callable[[], Awaitable[T]],
    *,
    what: str,
    deadline_s: float,
    transient: Callable[[BaseException], bool] = is_transient,
    backoff: Backoff | None = None,
) -> T:
    """``await op()`` until it succeeds, retrying transient failures on the schedule for at
    most ``deadline_s`` seconds; other errors propagate at once. Raises EventLogError naming
    ``what`` and the last cause when the deadline passes."""
    backoff = backoff or Backoff()
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return await op()
        except Exception as exc:
            left = deadline - time.monotonic()
            if not transient(exc):
                raise
            if left <= 0:
                raise EventLogError(
                    f"{what}: still failing after {deadline_s:g}s of retries: {describe(exc)}"
                ) from exc
            await backoff.sleep(left)


__all__ = ["BASE_S", "CAP_S", "Backoff", "consumer_gone", "describe", "is_transient", "retrying"]
