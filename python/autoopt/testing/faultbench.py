"""The fault benchmark: the real service under steady load while NATS servers are killed.

Each scenario starts its own loopback nats-server(s) and an `autoopt serve` process, sends a
`faultload` (core inputs plus ~5% hostile messages) at a fixed rate, optionally kills -9 a
server mid-load and starts it again, waits until the decider has caught up, and then counts
*from the streams* (not from counters):

    sent           messages the producer sent (valid + hostile)
    accepted       valid events stored in CORE and decided (at or below the decider's position)
    dead-lettered  sent messages with a `DeadLettered` record (hostile: matched by raw bytes)
    lost           sent - accepted - dead-lettered (must be 0)
    duplicated     extra copies: an event id twice in CORE, a `DecisionMade` id stored twice,
                   a hostile message dead-lettered twice (must be 0)
    restarts       `autoopt serve` process restarts (must be 0) / internal component restarts
    recover_s      from the kill to the first decision of an event sent after it
    p99 ms         trigger -> stored `DecisionMade`, from each trigger's *intended* send time:
                   "before" for triggers decided before the kill (the steady state), "during"
                   for the rest (in flight at the kill, or sent after it)
    send lag       p99 of how late the producer sent against its schedule (a loaded machine
                   or a blocked append): it is part of every latency above

Why one module: the benchmark (`benches/bench_faults.py`) and its CI smoke test run the same
scenarios at different scales.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from autoopt.events import DeadLettered, DecisionMade
from autoopt.log import EventLog, NatsSettings, Record
from autoopt.subjects import subject_filter_for_type
from autoopt.testing.cluster import NatsCluster
from autoopt.testing.faultload import Sent, build_load, produce
from autoopt.testing.serveproc import ServiceProcess

FAULTS = ("none", "restart", "kill-leader")


@dataclass(frozen=True)
class Scenario:
    """One row of the table. ``fault``: none | restart (single node, kill -9 and start again on
    the same port and store) | kill-leader (kill -9 the node leading CORE, start it later)."""

    name: str
    nodes: int = 1
    fault: str = "none"
    rate: float = 200.0
    duration_s: float = 8.0
    fault_at: float = 0.4
    """When the fault happens, as a fraction of the load's duration."""
    down_s: float = 1.0
    """How long the killed node stays down."""
    settle_s: float = 60.0
    """How long to wait for the decider to catch up after the load (then count anyway)."""

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, got {self.fault!r}")
        if self.nodes not in (1, 3):
            raise ValueError(f"nodes must be 1 or 3, got {self.nodes}")


@dataclass
class Row:
    """What one scenario measured."""

    scenario: str
    sent: int
    hostile: int
    accepted: int
    dead_lettered: int
    lost: int
    duplicated: int
    service_restarts: int
    task_restarts: int
    recover_s: float | None
    p99_before_ms: float | None
    p99_during_ms: float | None
    send_lag_p99_ms: float | None = None
    """How far behind its schedule the producer sent (p99): part of every latency here."""
    killed: str = ""
    send_errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def default_scenarios(rate: float = 200.0, duration_s: float = 8.0) -> list[Scenario]:
    """The benchmark's three rows."""
    return [
        Scenario("steady load, 1 node", rate=rate, duration_s=duration_s),
        Scenario("nats restart, 1 node", fault="restart", rate=rate, duration_s=duration_s),
        Scenario(
            "leader kill, 3 nodes R3", nodes=3, fault="kill-leader", rate=rate,
            duration_s=duration_s, down_s=3.0,
        ),
    ]


async def _leader_of_core(log: EventLog, cluster: NatsCluster) -> str:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(log.settings.request_timeout_s):
            info = await log.js.stream_info("CORE")
        if info.cluster is not None and info.cluster.leader in cluster.nodes:
            return str(info.cluster.leader)
    return next(iter(cluster.nodes))


async def _fault(sc: Scenario, log: EventLog, cluster: NatsCluster, t0_ns: int) -> tuple[int, str]:
    """Wait for the fault's moment, kill -9 the node, start it again after ``down_s``;
    returns (kill time in ns, the node's name)."""
    await asyncio.sleep(max(0.0, (t0_ns - time.time_ns()) / 1e9 + sc.fault_at * sc.duration_s))
    name = await _leader_of_core(log, cluster) if sc.fault == "kill-leader" else "n1"
    kill_ns = time.time_ns()
    await asyncio.to_thread(cluster.kill, name)
    await asyncio.sleep(sc.down_s)
    await asyncio.to_thread(cluster.restart, name)
    return kill_ns, name


async def _settle(log: EventLog, service: ServiceProcess, n_stored: int, timeout: float) -> int:
    """Wait until CORE holds at least ``n_stored`` messages and the decider's position is CORE's
    last sequence, twice in a row; returns that position (the last seen one on timeout)."""
    deadline = time.monotonic() + timeout
    position, steady = -1, 0
    while time.monotonic() < deadline:
        try:
            async with asyncio.timeout(log.settings.request_timeout_s):
                state = (await log.js.stream_info("CORE")).state
        except Exception:
            state = None
        position = await service.core_position()
        done = state is not None and state.messages >= n_stored and position >= state.last_seq
        steady = steady + 1 if done else 0
        if steady >= 2:
            break
        await asyncio.sleep(0.3)
    return position


async def _records(log: EventLog, target: str) -> list[Record]:
    """Every decodable record of ``target`` (hostile ones are skipped and counted by the
    replay); retried, since a stream that just re-elected its leader may stall a replay."""
    for attempt in range(5):
        try:
            return [r async for r in log.replay_records(target)]
        except Exception:
            if attempt == 4:
                raise
            await asyncio.sleep(1.0)
    return []


def _p99_ms(values: list[float]) -> float | None:
    return float(np.percentile(np.asarray(values), 99) / 1e6) if values else None


async def measure(log: EventLog, sent: list[Sent], position: int, kill_ns: int | None) -> dict:
    """The row's counts and latencies, from CORE, the decisions and the dead letters."""
    valid = {s.key: s for s in sent if not s.hostile}
    hostile = {s.payload: s for s in sent if s.hostile}
    core_seq: dict[str, list[int]] = {}
    for rec in await _records(log, "CORE"):
        if rec.event.event_id in valid:
            core_seq.setdefault(rec.event.event_id, []).append(rec.seq)
    decisions = await _records(log, subject_filter_for_type(DecisionMade))
    letters = await _records(log, subject_filter_for_type(DeadLettered))

    letter_count: Counter[str] = Counter()
    for rec in letters:
        ev = rec.event
        assert isinstance(ev, DeadLettered)
        if ev.payload in hostile:
            letter_count[hostile[ev.payload].key] += 1
        elif ev.causation_id in valid:
            letter_count[ev.causation_id] += 1
    accepted = {
        key for key, seqs in core_seq.items() if min(seqs) <= position and key not in letter_count
    }
    dead = set(letter_count)
    decided_at: dict[str, int] = {}
    ids: Counter[str] = Counter()
    for rec in decisions:
        ids[rec.event.event_id] += 1
        cause = rec.event.causation_id
        if cause in valid and (cause not in decided_at or rec.time_ns < decided_at[cause]):
            decided_at[cause] = rec.time_ns
    duplicated = (
        sum(len(seqs) - 1 for seqs in core_seq.values())
        + sum(n - 1 for n in ids.values())
        + sum(n - 1 for n in letter_count.values())
    )
    before, during, after_kill = [], [], []
    for key, at in decided_at.items():
        intended = valid[key].intended_ns
        if kill_ns is None or at < kill_ns:  # sent and decided before the fault
            before.append(at - intended)
        else:  # in flight at the kill, or sent after it
            during.append(at - intended)
            if intended >= kill_ns:
                after_kill.append(at - kill_ns)
    lag = [s.sent_ns - s.intended_ns for s in sent if s.sent_ns]
    return {
        "sent": len(sent),
        "hostile": len(hostile),
        "accepted": len(accepted),
        "dead_lettered": len(dead),
        "lost": len(sent) - len(accepted) - len(dead),
        "duplicated": duplicated,
        "recover_s": min(after_kill) / 1e9 if after_kill else None,
        "p99_before_ms": _p99_ms(before),
        "p99_during_ms": _p99_ms(during),
        "send_lag_p99_ms": _p99_ms(lag),
    }


async def run_scenario(sc: Scenario, workdir: Path) -> Row:
    """Run one scenario on fresh servers under ``workdir``; everything is stopped after."""
    cluster = NatsCluster(workdir / "nats", size=sc.nodes, cluster_name="faultbench")
    service: ServiceProcess | None = None
    log: EventLog | None = None
    watching: asyncio.Task[None] | None = None
    try:
        await asyncio.to_thread(cluster.start)
        settings = NatsSettings(
            urls=cluster.urls, replicas=sc.nodes, request_timeout_s=3.0, connect_timeout_s=3.0,
            reconnect_wait_s=0.2, max_reconnect_attempts=-1,
        )
        log = await EventLog.connect(settings)
        service = ServiceProcess(workdir / "serve", cluster.urls, replicas=sc.nodes)
        service.start()
        await service.wait_ready(60.0)
        watching = asyncio.create_task(service.watch())
        items = build_load(max(1, int(sc.rate * sc.duration_s)))
        t0_ns = time.time_ns() + 100_000_000
        producing = asyncio.create_task(produce(log, items, sc.rate, t0_ns=t0_ns))
        kill_ns, killed = None, ""
        if sc.fault != "none":
            kill_ns, killed = await _fault(sc, log, cluster, t0_ns)
        sent = await producing
        stored = sum(s.stored for s in sent)
        position = await _settle(log, service, stored, sc.settle_s)
        task_restarts = await service.component_restarts()
        counts = await measure(log, sent, position, kill_ns)
        return Row(
            scenario=sc.name, service_restarts=service.restarts, task_restarts=task_restarts,
            killed=killed, send_errors=[s.error for s in sent if s.error][:3], **counts,
        )
    finally:
        if watching is not None:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        if service is not None:
            await asyncio.to_thread(service.stop)
        if log is not None:
            with contextlib.suppress(Exception):
                await log.close()
        await asyncio.to_thread(cluster.close)


async def run_all(scenarios: list[Scenario], workdir: Path) -> list[Row]:
    """The scenarios one after another, each in its own subdirectory."""
    return [await run_scenario(sc, workdir / f"s{i}") for i, sc in enumerate(scenarios)]


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(rows: list[Row]) -> str:
    """One plain-text table (also valid Markdown)."""
    head = (
        "scenario", "sent", "accepted", "dead-lettered", "lost", "duplicated",
        "service restarts (tasks)", "recover s", "p99 before ms", "p99 during ms",
        "send lag p99 ms",
    )
    lines = [
        (
            r.scenario, str(r.sent), str(r.accepted), f"{r.dead_lettered} of {r.hostile}",
            str(r.lost), str(r.duplicated), f"{r.service_restarts} ({r.task_restarts})",
            _num(r.recover_s, ".2f"), _num(r.p99_before_ms, ".1f"), _num(r.p99_during_ms, ".1f"),
            _num(r.send_lag_p99_ms, ".1f"),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]

    def fmt(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(head), sep, *(fmt(line) for line in lines)])


__all__ = ["FAULTS", "Row", "Scenario", "default_scenarios", "measure", "run_all", "run_scenario", "table"]
