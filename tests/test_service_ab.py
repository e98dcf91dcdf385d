"""`autoopt serve` with ``[ab] enabled`` runs the signal router and the experiment supervisor:
signals emitted into the log reach their variants' subjects, routes are stored, and the
supervisor follows them; on a real nats-server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client import generate_latest

from autoopt.ab.experiments import ExperimentBook, ExperimentService, ExperimentSpec
from autoopt.ab.router import LIVE_FILTER
from autoopt.config import load_config
from autoopt.events import SignalEmitted, SignalRouted, SignalsRouted, VariantSpec, decode
from autoopt.log import EventLog, NatsSettings
from autoopt.plugins import load_plugins
from autoopt.service import Service


async def test_serve_routes_signals_when_ab_is_enabled(
    tmp_path: Path, nats_settings: NatsSettings, event_log: EventLog
) -> None:
    config = load_config(
        environ={
            "AUTOOPT_DATA_DIR": str(tmp_path),
            "AUTOOPT_NATS_URL": nats_settings.urls[0],
        }
    )
    assert config.ab.enabled is False  # opt-in: the engine must consume routed signals
    config = msgspec.structs.replace(
        config,
        policy=msgspec.structs.replace(config.policy, schedule=None),
        service=msgspec.structs.replace(config.service, http_port=0),
        ab=msgspec.structs.replace(config.ab, enabled=True, decide_interval_s=0.1),
    )
    svc = ExperimentService(event_log, ExperimentBook())
    await svc.create(
        ExperimentSpec(
            name="thr",
            symbol="BTCUSDT",
            variants=[
                VariantSpec(name="control", release_id="r1", weight=0.5),
                VariantSpec(name="chal", release_id="r2", weight=0.5),
            ],
        )
    )
    await svc.start("thr")
    got: list[Any] = []

    async def engine(msg: Any) -> None:
        got.append(decode(msg.data))

    sub = await event_log.nc.subscribe(LIVE_FILTER, cb=engine)
    service = Service(config, event_log, load_plugins())
    task = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(20):
            while service.router is None or not service.router.ready.is_set():
                await asyncio.sleep(0.05)
        signals = [
            SignalEmitted.new(symbol="BTCUSDT", signal_id=f"s{i}", side="long", confidence=0.8)
            for i in range(20)
        ]
        await event_log.append_many(signals)
        async with asyncio.timeout(20):
            while len(got) < 20:
                await asyncio.sleep(0.05)
        assert all(isinstance(g, SignalRouted) and g.experiment == "thr" for g in got)
        assert {g.variant for g in got} == {"control", "chal"}
        async with asyncio.timeout(20):
            while True:
                batches = [b async for b in event_log.replay("autoopt.signal.routed_batch.*")]
                if sum(len(b.routes) for b in batches if isinstance(b, SignalsRouted)) >= 20:
                    break
                await asyncio.sleep(0.05)
        assert service.supervisor is not None
        async with asyncio.timeout(20):  # the supervisor counts the routed signals
            while sum(s.routed for s in service.supervisor.tracker.of("thr").values()) < 20:
                await asyncio.sleep(0.05)
        exposed = generate_latest(service.metrics.registry).decode()
        assert 'autoopt_ab_signals_total{outcome="routed"} 20.0' in exposed
        assert 'autoopt_ab_signals_total{outcome="passed"} 0.0' in exposed
    finally:
        service.stop.set()
        await task
        await sub.unsubscribe()
    assert task.exception() is None
