"""Injected clocks: the core never reads the wall clock itself, so replay can drive time."""

from __future__ import annotations

import time
from typing import Protocol

NS_PER_S = 1_000_000_000


class Clock(Protocol):
    """Anything that tells the time in integer nanoseconds since the Unix epoch (UTC)."""

    def now_ns(self) -> int: ...


class SystemClock:
    """Wall-clock time, for the live service only."""

    def now_ns(self) -> int:
        return time.time_ns()


class SimulatedClock:
    """A clock that only moves when told to; replay and tests use it."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = int(start_ns)

    def now_ns(self) -> int:
        return self._now

    def set(self, ns: int) -> None:
        if ns < self._now:
            raise ValueError(f"SimulatedClock cannot go backwards: {ns} < {self._now}")
        self._now = int(ns)

    def advance(self, seconds: float) -> None:
        self._now += int(seconds * NS_PER_S)
