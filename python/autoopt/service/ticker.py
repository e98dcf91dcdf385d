"""Records the wall clock in the log: a `ClockTick` at every minute, so schedules fire on time.

Why: the decision core's clock moves only with the events it reads (`autoopt.core.decide`), so on
a quiet log the nightly 03:00 retrain would wait for whatever arrives next. The ticker appends
the time as an event instead of letting the core read a clock: the tick is read from CORE like
any other event, by every instance and by every replay, at the same place, so the same log and
config still give the same decisions.

Instants are whole minutes (cron's resolution) and a tick's id derives from its instant
(`ClockTick.at`): every instance appends the same ticks and the log stores each once
(Nats-Msg-Id dedup). The ticker wakes at each minute boundary of its clock, or after
``service.tick_interval_s`` when that is sooner, and appends the minute it has not appended yet;
a clock that steps back appends nothing until it passes the last tick again. A refused append is
retried on the `Backoff` schedule (a missed minute is covered by the next: the core fires every
schedule instant a tick crosses).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from autoopt.clock import NS_PER_S, Clock, SystemClock
from autoopt.events import ClockTick
from autoopt.log import EventLog
from autoopt.log.retry import Backoff, describe, is_transient

log = logging.getLogger(__name__)

TICK_NS = 60 * NS_PER_S
"""Ticks fall on whole minutes of the Unix epoch (UTC): cron's resolution."""


def tick_instant(now_ns: int) -> int:
    """The minute boundary at or before ``now_ns``: the instant a ticker reading ``now_ns``
    records (the same on every instance)."""
    return now_ns - now_ns % TICK_NS


_PAST_BOUNDARY_S = 0.005
"""Wake this long after a boundary: a timer firing a hair early would read the old minute."""


class Ticker:
    """Appends the `ClockTick` of each new minute its clock reaches until ``stop`` is set."""

    def __init__(self, event_log: EventLog, interval_s: float, *, clock: Clock | None = None) -> None:
        if not interval_s > 0:
            raise ValueError(f"Ticker: interval_s must be > 0, got {interval_s!r}")
        self._log = event_log
        self._interval_s = float(interval_s)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.last_ns = 0
        """The instant of the last tick appended (0: none yet)."""
        self.appended = 0
        """Ticks this ticker had stored or found stored (a duplicate of another instance's)."""

    async def tick(self) -> bool:
        """Append the tick of the clock's current minute if it is new; True when it was (or
        already is) stored. A transient log fault is logged and returns False (retry later);
        anything else raises to the service's supervisor."""
        instant = tick_instant(self._clock.now_ns())
        if instant <= self.last_ns:
            return True
        try:
            await self._log.append(ClockTick.at(instant, clock=self._clock))
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("clock tick %d not appended (retrying): %s", instant, describe(exc))
            return False
        self.last_ns = instant
        self.appended += 1
        return True

    def _until_next_s(self) -> float:
        """Seconds to sleep: just past the next minute boundary, at most ``interval_s``."""
        now = self._clock.now_ns()
        until = (tick_instant(now) + TICK_NS - now) / NS_PER_S + _PAST_BOUNDARY_S
        return min(self._interval_s, until)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set (first tick at once: the current minute). Stopping does
        not wait for an append in hand (the log's own retries may take a while during an
        outage): it is cancelled, which is safe, a tick changes nothing but the log."""
        backoff = Backoff()
        while not stop.is_set():
            ticked = await _unless_stopped(self.tick(), stop)
            if ticked is None:
                return
            if ticked:
                backoff.reset()
                delay = self._until_next_s()
            else:
                delay = min(backoff.next_delay(), self._until_next_s())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()


async def _unless_stopped(step: Coroutine[Any, Any, bool], stop: asyncio.Event) -> bool | None:
    """``step``'s result, or None (``step`` cancelled) when ``stop`` is set first."""
    task = asyncio.ensure_future(step)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        stopping.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None
    return task.result()


__all__ = ["TICK_NS", "Ticker", "tick_instant"]
