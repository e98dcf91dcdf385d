"""A/B router throughput and latency on a real nats-server, beside a naive per-message peer.

Run: ``python -m pytest benches/bench_router.py --benchmark-only --benchmark-columns=min,median``

Three experiments run at once: BTCUSDT (split 50/50, signal units), ETHUSDT (split three ways,
account units), SOLUSDT (shadow: the champion live, two challengers on paper). The router runs
in this process; a separate process (this file run as a script) produces `SignalEmitted` into
the log and receives the live deliveries (one per signal), so the router has its core to itself
and latency is measured end to end: from the signal's ``ts_event`` to its routed delivery.

Groups (each case beside its peer in the same run):
    router-sustained  signals produced at 10,000/s for 4 s after 1.5 s of warm-up traffic (a fresh
                      nats-server's first seconds are dominated by its heap growing, i.e. Go GC
                      cycles that stall every consumer for 10-20 ms): delivered signals/s,
                      p50/p99 latency of the measured signals.
                      Peer: the naive router at the same offered rate for 1 s (it falls behind
                      at once; a longer burst only lengthens the run); and the forward floor.
    router-drain      30,000 signals already in the log: how fast the router drains them
                      (signals/s). Peer: the naive router on 3,000.
Each routed delivery also carries the router's routing time (``ts_init``), so the trip is split
in two legs: ``to_router`` (signal created -> routed: the producer's append, the store, the push
to the router and its wait) and ``from_router`` (routed -> received: the native routing, the
write, the server's fan-out and the receiver).
The naive peer routes with the same `SignalRouter.route` but fetches one message at a time and
awaits each log append, delivery and ack. The ``forward`` case (sustained group) is the floor of
this setup: the same continuous pull, but each signal is only republished as it came, no routing
and no records, so what the router adds is the difference. Numbers are printed and kept in
``extra_info``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autoopt.ab.experiments import ExperimentBook, ExperimentService, ExperimentSpec
from autoopt.ab.router import PASSTHROUGH_SUBJECT, SignalRouter
from autoopt.events import SignalEmitted, SignalRouted, VariantSpec, decode
from autoopt.log import EventLog, NatsSettings
from autoopt.subjects import subject_filter_for_type

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
RATE, SECONDS, NAIVE_SECONDS = 10_000, 4.0, 1.0  # the naive peer gets a shorter burst
WARMUP_S = 1.5  # traffic before the measured seconds: a fresh server grows its heap (Go GC) then
N_DRAIN, N_DRAIN_NAIVE = 30_000, 3_000


def _specs() -> list[ExperimentSpec]:
    v = VariantSpec
    return [
        ExperimentSpec(
            name="btc-split",
            symbol="BTCUSDT",
            variants=[
                v(name="control", release_id="r1", weight=0.5),
                v(name="chal", release_id="r2", weight=0.5, config={"confidence_threshold": 0.6}),
            ],
        ),
        ExperimentSpec(
            name="eth-accounts",
            symbol="ETHUSDT",
            unit="account",
            variants=[
                v(name="control", release_id="r1", weight=0.4),
                v(name="half", release_id="r1", weight=0.3, config={"size_multiplier": 0.5}),
                v(name="double", release_id="r1", weight=0.3, config={"size_multiplier": 2.0}),
            ],
        ),
        ExperimentSpec(
            name="sol-shadow",
            symbol="SOLUSDT",
            shadow=True,
            variants=[
                v(name="control", release_id="r1", weight=0.34),
                v(name="tft", release_id="r3", weight=0.33),
                v(name="lgbm2", release_id="r4", weight=0.33),
            ],
        ),
    ]


def _signal(i: int) -> SignalEmitted:
    return SignalEmitted.new(
        symbol=SYMBOLS[i % 3],
        signal_id=f"sig-{i}",
        side="long",
        confidence=0.5 + (i % 10) / 20,
        price=100.0,
        extra={"account": f"acct-{i % 97}"},
    )


# ------------------------------------------------------------------- the naive peer


async def naive_run(router: SignalRouter, stop: asyncio.Event, durable: str) -> None:
    """One message at a time: fetch 1, route, await every append, delivery and ack."""
    consumer = await router.log.durable(
        durable, subject_filter_for_type(SignalEmitted), deliver="new"
    )
    router.ready.set()
    try:
        while not stop.is_set():
            items = await consumer.fetch(1, timeout=0.05)
            for item in items:
                plan = router.route(item.event, item.msg.data)  # type: ignore[arg-type]
                for subject, payload in plan.deliveries:
                    await router.log.nc.publish(subject, payload)
                    await router.log.nc.flush()
                for rec in plan.records:
                    await router.log.append(rec)
                await item.ack()
    finally:
        await consumer.close()


async def forward_run(router: SignalRouter, stop: asyncio.Event, durable: str) -> None:
    """The floor: the router's continuous pull and acks, each signal republished untouched."""
    consumer = await router.log.durable(
        durable, subject_filter_for_type(SignalEmitted), deliver="new", ack_all=True,
        max_ack_pending=10_000,
    )  # fmt: skip
    router.ready.set()
    publish = router.log.nc.publish
    try:
        while not stop.is_set():
            items = await consumer.next_batch(1024, timeout=0.05)
            for item in items:
                await publish(PASSTHROUGH_SUBJECT, item.msg.data)
            if items:
                await items[-1].ack()
    finally:
        await consumer.close()


# --------------------------------------------------------------------- the driver


async def _round(
    log: EventLog, kind: str, mode: str, n_or_rate: int, tag: str, seconds: float = 0.0
) -> dict:
    """Start the peer process and a router on a fresh durable consumer; let the peer drive."""
    peer = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__)), log.url, mode, str(n_or_rate), str(seconds),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert peer.stdin is not None and peer.stdout is not None
    assert (await peer.stdout.readline()).strip() == b"ready"  # subscribed to deliveries
    router = SignalRouter(log, ExperimentBook())
    await router.follow_experiments()
    durable = f"bench-{tag}-{kind}-{time.time_ns()}"
    if mode == "drain":  # the signals wait in the log before the router starts
        consumer = await log.durable(
            durable, subject_filter_for_type(SignalEmitted), deliver="new", ack_all=kind != "naive"
        )
        await consumer.close()
        await log.append_many([_signal(i) for i in range(n_or_rate)])
    stop = asyncio.Event()
    if kind == "naive":
        task = asyncio.create_task(naive_run(router, stop, durable))
    elif kind == "forward":
        task = asyncio.create_task(forward_run(router, stop, durable))
    else:
        task = asyncio.create_task(router.run(stop, durable=durable, batch=1024, poll_s=0.05))
    await router.ready.wait()
    peer.stdin.write(b"go\n")
    await peer.stdin.drain()
    talk = asyncio.ensure_future(peer.communicate())
    await asyncio.wait([talk, task], return_when=asyncio.FIRST_COMPLETED)
    if task.done() and not talk.done():  # the router died: report it, not a peer timeout
        peer.kill()
        await talk
        task.result()
        raise RuntimeError("the router stopped before the peer finished")
    out, _ = await talk
    stop.set()
    await task
    await router.close()
    # each round gets a fresh durable; removing it keeps later rounds from paying for it
    await log.js.delete_consumer("SIGNALS", durable)
    if peer.returncode != 0:
        raise RuntimeError(f"peer process failed with {peer.returncode}")
    return json.loads(out.decode().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def experiments(loop: asyncio.AbstractEventLoop, bench_log: EventLog) -> None:
    async def go() -> None:
        svc = ExperimentService(bench_log, ExperimentBook())
        for spec in _specs():
            await svc.create(spec)
            await svc.start(spec.name)

    loop.run_until_complete(go())


def _report(benchmark: Any, result: dict[str, Any]) -> None:
    benchmark.extra_info.update(result)
    print(f"\n{benchmark.name}: {json.dumps(result)}")


@pytest.mark.parametrize("kind", ["router", "forward", "naive"])
def test_router_sustained(
    benchmark: Any,
    loop: asyncio.AbstractEventLoop,
    bench_log: EventLog,
    experiments: None,
    kind: str,
) -> None:
    benchmark.group = "router-sustained"
    seconds = NAIVE_SECONDS if kind == "naive" else SECONDS
    result = benchmark.pedantic(
        lambda: loop.run_until_complete(_round(bench_log, kind, "rate", RATE, "rate", seconds)),
        rounds=1,
        iterations=1,
    )
    _report(benchmark, result)
    assert result["delivered"] > 0


@pytest.mark.parametrize("naive", [False, True], ids=["router", "naive"])
def test_router_drain(
    benchmark: Any,
    loop: asyncio.AbstractEventLoop,
    bench_log: EventLog,
    experiments: None,
    naive: bool,
) -> None:
    benchmark.group = "router-drain"
    n = N_DRAIN_NAIVE if naive else N_DRAIN
    result = benchmark.pedantic(
        lambda: loop.run_until_complete(
            _round(bench_log, "naive" if naive else "router", "drain", n, "drain")
        ),
        rounds=1,
        iterations=1,
    )
    _report(benchmark, result)
    assert result["delivered"] == n


# --------------------------------------------- the peer process: produce and receive


async def _peer(url: str, mode: str, n_or_rate: int, seconds: float) -> dict[str, Any]:
    log = await EventLog.connect(NatsSettings(urls=[url]), ensure=False)
    lat: list[int] = []
    times: list[int] = []
    measure_from = 0  # signals created before this (the warm-up) are delivered, not counted

    to_router: list[int] = []  # signal created -> routed (the routed signal's ts_init)
    from_router: list[int] = []  # routed -> received here

    async def on_msg(msg: Any) -> None:
        now = time.time_ns()
        ev = decode(msg.data)
        ts = ev.ts_event
        if ts >= measure_from:
            lat.append(now - ts)
            times.append(now)
            if isinstance(ev, SignalRouted):
                to_router.append(ev.ts_init - ts)
                from_router.append(now - ev.ts_init)

    subs = [
        await log.nc.subscribe("autoopt.route.live", cb=on_msg),
        await log.nc.subscribe("autoopt.route.live.>", cb=on_msg),
    ]
    await log.nc.flush()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # the router is consuming
    sent = 0
    t0 = time.perf_counter()
    t0_wall = time.time_ns()
    if mode == "rate":
        i = warm = 0
        measure_from = t0_wall + int(WARMUP_S * 1e9)
        while (elapsed := time.perf_counter() - t0) < WARMUP_S + seconds:
            due = int(n_or_rate * elapsed) - sent - warm
            if due > 0:
                batch = [_signal(i + k) for k in range(due)]
                await log.append_many(batch)
                i += due
                if batch[0].ts_event < measure_from:
                    warm += due  # (a batch straddling the start counts as warm-up)
                else:
                    sent += due
            await asyncio.sleep(0.001)
        expected = sent
    else:
        expected = n_or_rate
    deadline = time.perf_counter() + 120
    while len(lat) < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    for sub in subs:
        await sub.unsubscribe()
    await log.close()
    arr = np.array(lat, dtype=np.float64) / 1e6
    if trace := os.environ.get("BENCH_ROUTER_TRACE"):  # a file to keep (arrival ns, latency ms)
        np.save(trace, np.stack([np.array(times, dtype=np.float64), arr]))
    start = measure_from if mode == "rate" else (min(times) if times else 0)
    span = (max(times) - start) / 1e9 if times else float("nan")
    return {
        "mode": mode,
        "offered": sent if mode == "rate" else n_or_rate,
        "delivered": len(lat),
        "signals_per_s": round(len(lat) / span, 1) if span > 0 else None,
        "span_s": round(span, 3),
        "p50_ms": round(float(np.percentile(arr, 50)), 3) if arr.size else None,
        "p99_ms": round(float(np.percentile(arr, 99)), 3) if arr.size else None,
        "max_ms": round(float(arr.max()), 3) if arr.size else None,
        **_split("to_router", to_router),
        **_split("from_router", from_router),
    }


def _split(name: str, values: list[int]) -> dict[str, float]:
    """p50/p99 (ms) of one leg of the trip, when the deliveries say where the router was."""
    if not values:
        return {}
    a = np.array(values, dtype=np.float64) / 1e6
    return {f"{name}_p50_ms": round(float(np.percentile(a, 50)), 3),
            f"{name}_p99_ms": round(float(np.percentile(a, 99)), 3)}  # fmt: skip


if __name__ == "__main__":
    url_, mode_, n_, secs_ = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    print(json.dumps(asyncio.run(_peer(url_, mode_, n_, secs_))))
