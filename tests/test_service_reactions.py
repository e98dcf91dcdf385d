"""Event reactions (`autoopt_on_event`) run inside the service's decider: in-process services on
a real server, two instances, each reaction stored once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from autoopt.config import Config, load_config
from autoopt.events import DecisionMade, MetricsReported, RiskParamsUpdated
from autoopt.log import EventLog, NatsSettings
from autoopt.plugins import hookimpl, load_plugins
from autoopt.service import Service
from autoopt.subjects import subject_filter_for_type


class HalveSizeOnLosses:
    """A third-party style plugin: cut position size when a window's Sharpe is negative."""

    @hookimpl
    def autoopt_on_event(self, event):
        if isinstance(event, MetricsReported) and event.metrics.get("sharpe", 0.0) < 0:
            return [RiskParamsUpdated.new(symbol=event.symbol, params={"size": 0.5}, reason="negative sharpe", tuner="halver")]
        return None


def _config(tmp_path: Path, url: str) -> Config:
    config = load_config(environ={"AUTOOPT_DATA_DIR": str(tmp_path), "AUTOOPT_NATS_URL": url})
    policy = msgspec.structs.replace(config.policy, schedule=None)
    # no clock ticks: the test counts the events the core decided
    service = msgspec.structs.replace(config.service, http_port=0, tick_interval_s=0.0)
    return msgspec.structs.replace(config, policy=policy, service=service)


async def _wait(log: EventLog, cls, n: int, timeout: float = 20.0) -> list:
    for _ in range(int(timeout / 0.1)):
        found = [e async for e in log.replay(subject_filter_for_type(cls))]
        if len(found) >= n:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {n} {cls.__name__}")


async def test_reactions_are_appended_once_by_two_instances(tmp_path: Path, nats_settings: NatsSettings) -> None:
    config = _config(tmp_path, nats_settings.urls[0])
    logs = [await EventLog.connect(nats_settings) for _ in range(2)]
    plugins = load_plugins(extra=[("halver", HalveSizeOnLosses())])
    services = [Service(config, log, plugins) for log in logs]
    tasks = [asyncio.create_task(s.run()) for s in services]
    try:
        await logs[0].append(MetricsReported.new(symbol="GOOG", window="1d", metrics={"sharpe": 1.0}))
        await logs[0].append(MetricsReported.new(symbol="GOOG", window="1d", metrics={"sharpe": -0.4}))
        [reaction] = await _wait(logs[0], RiskParamsUpdated, 1)
        assert reaction.params == {"size": 0.5}
        assert reaction.causation_id is not None
        # both instances decided both events; the shared log holds each decision once
        for s in services:
            for _ in range(100):
                if s.decider is not None and s.decider.state.data.n_events >= 2:
                    break
                await asyncio.sleep(0.1)
            assert s.decider is not None and s.decider.state.data.n_events == 2
        await asyncio.sleep(0.5)
        assert len([e async for e in logs[0].replay(subject_filter_for_type(RiskParamsUpdated))]) == 1
        decisions = [e async for e in logs[0].replay(subject_filter_for_type(DecisionMade))]
        assert len({d.event_id for d in decisions}) == len(decisions)
        assert services[0].decider.state.digest() == services[1].decider.state.digest()
    finally:
        for s in services:
            s.stop.set()
        await asyncio.gather(*tasks)
        for log in logs:
            await log.close()
