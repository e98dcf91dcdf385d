"""The service process: decider + job runner + HTTP endpoints (+ the A/B router and
experiment supervisor with ``[ab] enabled``), with graceful shutdown.

SIGTERM/SIGINT set the stop flag: the decider finishes the event in hand and checkpoints, the
job runner finishes (drains) the retrain in hand and acks it, then the process exits 0.
SIGKILL loses nothing: unacked jobs are redelivered, the core resumes from its checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from autoopt.ab.decision import ExperimentSupervisor
from autoopt.ab.experiments import ExperimentBook
from autoopt.ab.router import SignalRouter
from autoopt.config import Config
from autoopt.log import EventLog
from autoopt.plugins import Plugins
from autoopt.service.checkpoint import Checkpoints
from autoopt.service.core_stream import ensure_core_stream
from autoopt.service.decider import Decider
from autoopt.service.http import HttpServer
from autoopt.service.jobs import JobRunner
from autoopt.service.metrics import ServiceMetrics

log = logging.getLogger(__name__)


class Service:
    """One `autoopt serve` instance (several may share a log)."""

    def __init__(self, config: Config, event_log: EventLog, plugins: Plugins) -> None:
        self.config = config
        self.log = event_log
        self.plugins = plugins
        self.metrics = ServiceMetrics()
        self.stop = asyncio.Event()
        self.decider: Decider | None = None
        self.jobs: JobRunner | None = None
        self.http: HttpServer | None = None
        self.router: SignalRouter | None = None  # with [ab] enabled
        self.supervisor: ExperimentSupervisor | None = None
        self._started = asyncio.Event()

    def ready(self) -> tuple[bool, str]:
        if self.stop.is_set():
            return False, "stopping"
        if not self.log.nc.is_connected:
            return False, "not connected to NATS"
        if self.decider is None or not self._started.is_set():
            return False, "starting"
        if self.decider.lag > self.config.service.ready_lag:
            return False, f"catching up: {self.decider.lag} events behind"
        return True, "ok"

    async def run(self) -> None:
        """Run until `stop` is set; returns after draining."""
        await ensure_core_stream(self.log)
        checkpoints = await Checkpoints.open(self.log, self.config)
        self.decider = Decider(self.log, self.config, self.plugins, self.metrics, checkpoints)
        await self.decider.restore()
        self.jobs = JobRunner(self.log, self.config, self.plugins, self.metrics)
        svc = self.config.service
        self.http = HttpServer(self.metrics, self.ready, svc.http_host, svc.http_port)
        port = await self.http.start()
        log.info("serving /metrics /healthz /readyz on %s:%d", svc.http_host, port)
        self._started.set()
        tasks = [
            asyncio.create_task(self.decider.run(self.stop), name="decider"),
            asyncio.create_task(self.jobs.run(self.stop), name="jobs"),
        ]
        ab = self.config.ab
        if ab.enabled:
            self.supervisor = await ExperimentSupervisor.open(
                self.log, interval_s=ab.decide_interval_s
            )
            self.router = SignalRouter(self.log, ExperimentBook())
            self.metrics.watch_router(self.router)
            tasks.append(
                asyncio.create_task(
                    self.router.run(
                        self.stop, durable=ab.durable, persist_interval_s=ab.persist_interval_s
                    ),
                    name="ab-router",
                )
            )
            log.info("A/B router consuming signals as %r", ab.durable)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    self.stop.set()
                    raise task.exception()  # type: ignore[misc]
        finally:
            self.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.router is not None:
                await self.router.close()
            if self.supervisor is not None:
                await self.supervisor.close()
            await self.http.stop()
            log.info("service stopped")


def _install_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def serve(config: Config, *, plugins: Plugins | None = None) -> None:
    """Open the log (embedded server when no URL is configured) and run a service until signalled."""
    from autoopt.runtime import open_event_log, open_plugins

    event_log = await open_event_log(config)
    try:
        service = Service(config, event_log, plugins or open_plugins(config))
        _install_signals(service.stop)
        log.info("autoopt serve connected to %s", event_log.url)
        await service.run()
    finally:
        await event_log.close()
