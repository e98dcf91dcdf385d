"""End-to-end trigger latency of the service on the embedded server.

From appending a triggering event (a manual RetrainRequested) to the retrain decision
(`DecisionMade`) arriving at a subscriber: JetStream append → sourcing into CORE → the decider's
ordered consumer → `decide` → the decision's append → delivery. The peer is the floor of the
same path without autoopt: a plain JetStream publish of the same payload to a stream and its
delivery to a push subscriber, measured in the same run. Run:
``pytest benches/bench_service.py --benchmark-only -s``.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
import numpy as np

from autoopt.config import load_config
from autoopt.events import DecisionMade, RetrainRequested, decode, encode
from autoopt.log import EventLog
from autoopt.plugins import load_plugins
from autoopt.service.checkpoint import Checkpoints
from autoopt.service.core_stream import ensure_core_stream
from autoopt.service.decider import Decider
from autoopt.service.metrics import ServiceMetrics
from autoopt.subjects import subject_filter_for_type

N = 300


def _percentiles(lat: list[float]) -> dict[str, float]:
    arr = np.asarray(lat) * 1e3
    return {"p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99))}


async def _trigger_latency(log: EventLog, tmp: str) -> dict[str, float]:
    config = load_config(environ={"AUTOOPT_DATA_DIR": tmp})
    policy = msgspec.structs.replace(config.policy, schedule=None, max_concurrent=10**6)
    config = msgspec.structs.replace(config, policy=policy)
    await ensure_core_stream(log)
    decider = Decider(log, config, load_plugins(), ServiceMetrics(), await Checkpoints.open(log, config))
    await decider.restore()
    stop = asyncio.Event()
    task = asyncio.create_task(decider.run(stop))
    sent: dict[str, float] = {}
    lat: list[float] = []
    done = asyncio.Event()

    async def on_decision(msg) -> None:  # noqa: ANN001
        event = decode(msg.data)
        if isinstance(event, DecisionMade) and event.kind == "retrain":
            lat.append(time.perf_counter() - sent[event.symbol])
            if len(lat) == N:
                done.set()

    sub = await log.nc.subscribe(subject_filter_for_type(DecisionMade), cb=on_decision)
    t0 = time.perf_counter()
    for i in range(N):
        symbol = f"SYM{i}"  # one symbol per request: no guard holds any of them back
        sent[symbol] = time.perf_counter()
        await log.append(RetrainRequested.new(symbol=symbol, reason="manual"))
        await asyncio.sleep(0.002)  # a trickle, not a burst: latency, not queueing
    await asyncio.wait_for(done.wait(), 60)
    elapsed = time.perf_counter() - t0
    await sub.unsubscribe()
    stop.set()
    await task
    return {**_percentiles(lat), "events_per_s": N / elapsed}


async def _floor_latency(log: EventLog) -> dict[str, float]:
    """The same round trip through plain JetStream: publish, store, deliver."""
    from nats.js.api import StreamConfig

    await log.js.add_stream(StreamConfig(name="BENCHFLOOR", subjects=["benchfloor.>"]))
    lat: list[float] = []
    done = asyncio.Event()
    sent: dict[bytes, float] = {}
    payload = encode(RetrainRequested.new(symbol="X", reason="manual"))

    async def on_msg(msg) -> None:  # noqa: ANN001
        lat.append(time.perf_counter() - sent[msg.headers["k"].encode()])
        if len(lat) == N:
            done.set()

    sub = await log.js.subscribe("benchfloor.>", cb=on_msg, ordered_consumer=True)
    for i in range(N):
        key = str(i).encode()
        sent[key] = time.perf_counter()
        await log.js.publish("benchfloor.x", payload, headers={"k": key.decode()})
        await asyncio.sleep(0.002)
    await asyncio.wait_for(done.wait(), 60)
    await sub.unsubscribe()
    return _percentiles(lat)


def test_trigger_to_decision_latency(benchmark, loop, bench_log, tmp_path) -> None:  # noqa: ANN001
    ours = benchmark.pedantic(
        lambda: loop.run_until_complete(_trigger_latency(bench_log, str(tmp_path))), rounds=1, iterations=1
    )
    floor = loop.run_until_complete(_floor_latency(bench_log))
    benchmark.extra_info.update({**{f"autoopt_{k}": v for k, v in ours.items()}, **{f"floor_{k}": v for k, v in floor.items()}})
    print(
        f"\ntrigger → decision: p50 {ours['p50_ms']:.2f} ms, p99 {ours['p99_ms']:.2f} ms "
        f"(plain JetStream publish → delivery: p50 {floor['p50_ms']:.2f} ms, p99 {floor['p99_ms']:.2f} ms; "
        f"ratio p50 {ours['p50_ms'] / floor['p50_ms']:.1f}x)"
    )
