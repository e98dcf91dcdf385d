"""Per-core benchmark harness: each native kernel beside its peer, on one thread and on all.

Why: a service shares its cores with the trading engine and the trainer, so a kernel must win
per core, not only with every core to itself. Each `Workload` names our call, the peer a user
would otherwise call, and how the peer itself is threaded. `measure` runs the rounds
interleaved (ours pinned to one thread, ours on all threads, the peer, then again), so load from
other jobs on a shared machine hits every side alike, and keeps the minimum of each side: the
run least disturbed (a call of a few milliseconds is repeated within its round, fastest kept). Ratios are peer time / our time, so > 1 means we are faster.

The thread switch is ``AUTOOPT_THREADS`` (`autoopt.runtime.set_native_threads` in-process).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from autoopt.runtime import set_native_threads

MIN_ROUNDS = 5


@dataclass(frozen=True)
class Workload:
    """One comparison: `ours(data)` against `peer(data)` on `setup()`'s data."""

    name: str
    peer_name: str
    peer_threads: str
    """How the peer is threaded, stated in the report (e.g. "1 (Python loop)")."""
    setup: Callable[[], Any]
    ours: Callable[[Any], Any]
    peer: Callable[[Any], Any]
    goal: float | None = None
    """Ratio the one-thread run must reach (peer / ours), if the issue sets one."""
    check: Callable[[Any, Any, Any], None] | None = None
    """Called once with (data, our result, the peer's result) before timing: same answer."""


@dataclass(frozen=True)
class Measurement:
    workload: Workload
    rounds: int
    ours_1: float
    """min seconds, native side pinned to one thread"""
    ours_all: float
    all_threads: int
    peer: float

    @property
    def ratio_1(self) -> float:
        return self.peer / self.ours_1

    @property
    def ratio_all(self) -> float:
        return self.peer / self.ours_all

    @property
    def met(self) -> bool | None:
        g = self.workload.goal
        return None if g is None else self.ratio_1 >= g


@contextmanager
def pinned(threads: int | None) -> Iterator[None]:
    """Native kernels limited to `threads` (None: all cores) inside the block."""
    set_native_threads(threads)
    try:
        yield
    finally:
        set_native_threads(None)


def all_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


#: a round of a fast call repeats it until about this long and keeps its fastest run
ROUND_S = 0.05


def _timed(fn: Callable[[Any], Any], data: Any, repeat: int = 1) -> float:
    gc.collect()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(data)
        best = min(best, time.perf_counter() - t0)
    return best


def measure(w: Workload, rounds: int = MIN_ROUNDS) -> Measurement:
    """Interleaved rounds of ours on 1 thread / ours on all threads / peer; minima."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    data = w.setup()
    n_all = all_cores()
    if w.check is not None:
        with pinned(1):
            one = w.ours(data)
        w.check(data, one, w.peer(data))
    with pinned(n_all):
        # warm-up (lazily built tables, first touch of the inputs), and how often a round repeats
        repeat = max(1, min(100, int(ROUND_S / max(_timed(w.ours, data), 1e-6))))
    t1: list[float] = []
    tall: list[float] = []
    tp: list[float] = []
    for _ in range(rounds):
        # ours first: a peer with its own thread pool (polars) leaves its workers spinning for
        # a while after each call, which would land on our one-thread run
        with pinned(1):
            t1.append(_timed(w.ours, data, repeat))
        with pinned(n_all):
            tall.append(_timed(w.ours, data, repeat))
        tp.append(_timed(w.peer, data))
    return Measurement(w, rounds, min(t1), min(tall), n_all, min(tp))
