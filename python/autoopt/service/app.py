"""The service process: decider + job runner + clock ticker + HTTP endpoints (+ the A/B router
and experiment supervisor with ``[ab] enabled``), with graceful shutdown.

The ticker (``service.tick_interval_s`` > 0) records each wall-clock minute as a `ClockTick`, so
the core's schedules fire on time on a quiet log (`autoopt.service.ticker`).

SIGTERM/SIGINT set the stop flag: the decider finishes the event in hand and checkpoints, the
job runner finishes (drains) the retrain in hand and acks it, then the process exits 0.
SIGKILL loses nothing: unacked jobs are redelivered, the core resumes from its checkpoint.

No component's error ends the process: each runs under `Service._supervise`, which logs the
failure, answers 503 on ``/readyz`` while it is down, and restarts it on the
`autoopt.log.retry.Backoff` schedule (the decider from its last decided sequence; unacked jobs
and signals are redelivered). Transient NATS faults (leader elections, node kills, reconnects)
are mostly absorbed below, in the consumers' own retries; this is the last line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from autoopt.ab.decision import ExperimentSupervisor
from autoopt.ab.experiments import ExperimentBook
from autoopt.ab.router import SignalRouter
from autoopt.clock import Clock
from autoopt.config import Config
from autoopt.log import EventLog
from autoopt.log.retry import Backoff, describe
from autoopt.plugins import Plugins
from autoopt.service.checkpoint import Checkpoints
from autoopt.service.core_stream import ensure_core_stream
from autoopt.service.dashboard import DashboardFeed
from autoopt.service.decider import Decider
from autoopt.service.http import HttpServer
from autoopt.service.jobs import JobRunner
from autoopt.service.metrics import ServiceMetrics
from autoopt.service.ticker import Ticker

log = logging.getLogger(__name__)


class Service:
    """One `autoopt serve` instance (several may share a log)."""

    def __init__(
        self, config: Config, event_log: EventLog, plugins: Plugins, *, clock: Clock | None = None
    ) -> None:
        self.config = config
        self.log = event_log
        self.plugins = plugins
        self.clock = clock
        """The ticker's wall clock (None: the system clock); tests inject a simulated one."""
        self.metrics = ServiceMetrics()
        self.stop = asyncio.Event()
        self.decider: Decider | None = None
        self.jobs: JobRunner | None = None
        self.http: HttpServer | None = None
        self.router: SignalRouter | None = None  # with [ab] enabled
        self.supervisor: ExperimentSupervisor | None = None
        self.ticker: Ticker | None = None  # with service.tick_interval_s > 0
        self.dashboard: DashboardFeed | None = None  # with service.dashboard
        self.alerter: Any = None  # an autoopt.alerts.Alerter with [alerts] enabled
        self.paper: Any = None  # autoopt.paper.trader.PaperTrader, with [paper] enabled
        self._started = asyncio.Event()
        self._down: dict[str, str] = {}  # component -> why it is being restarted

    def ready(self) -> tuple[bool, str]:
        if self.stop.is_set():
            return False, "stopping"
        if not self.log.nc.is_connected:
            return False, "not connected to NATS"
        if self.decider is None or not self._started.is_set():
            return False, "starting"
        if self.decider.stalled is not None:
            return False, f"decider stalled: {self.decider.stalled}"
        if self._down:
            name, why = next(iter(self._down.items()))
            return False, f"{name} restarting after: {why}"
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
        if svc.dashboard:
            self.dashboard = DashboardFeed(self.log, svc.dashboard_refresh_s)
            self.metrics.watch_models(self.dashboard.state)
        self.http = HttpServer(self.metrics, self.ready, svc.http_host, svc.http_port,
                               dashboard=self.dashboard, token=svc.dashboard_token)
        port = await self.http.start()
        log.info("serving /metrics /healthz /readyz on %s:%d", svc.http_host, port)
        self._started.set()
        decider, jobs = self.decider, self.jobs
        tasks = [
            asyncio.create_task(self._supervise("decider", lambda: decider.run(self.stop))),
            asyncio.create_task(self._supervise("jobs", lambda: jobs.run(self.stop))),
        ]
        if self.dashboard is not None:
            feed = self.dashboard
            tasks.append(asyncio.create_task(self._supervise("dashboard", lambda: feed.run(self.stop))))
        if self.config.alerts.enabled:
            from autoopt.alerts.alerter import Alerter

            alerter = self.alerter = Alerter(self.log, self.config.alerts,
                                             champion_event=self.config.policy.champion_event)
            tasks.append(asyncio.create_task(self._supervise("alerts", lambda: alerter.run(self.stop))))
        if svc.tick_interval_s > 0:
            ticker = self.ticker = Ticker(self.log, svc.tick_interval_s, clock=self.clock)
            tasks.append(asyncio.create_task(self._supervise("ticker", lambda: ticker.run(self.stop))))
        ab = self.config.ab
        if ab.enabled:
            from autoopt.registry import open_registry

            self.supervisor = await ExperimentSupervisor.open(
                self.log, interval_s=ab.decide_interval_s, registry=open_registry(self.config)
            )
            router = self.router = SignalRouter(self.log, ExperimentBook())
            self.metrics.watch_router(self.router)
            tasks.append(
                asyncio.create_task(
                    self._supervise(
                        "ab-router",
                        lambda: router.run(
                            self.stop, durable=ab.durable, persist_interval_s=ab.persist_interval_s
                        ),
                    )
                )
            )
            log.info("A/B router consuming signals as %r", ab.durable)
        if self.config.paper.enabled:
            from autoopt.paper.trader import PaperTrader
            from autoopt.registry import open_registry

            paper = self.paper = PaperTrader(self.log, self.config.paper, plugins=self.plugins,
                                             registry=open_registry(self.config))
            tasks.append(asyncio.create_task(self._supervise("paper", lambda: paper.run(self.stop))))
            log.info("paper trader filling routed paper signals")
        try:
            await asyncio.gather(*tasks)
        finally:
            self.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.router is not None:
                await self.router.close()
            if self.supervisor is not None:
                await self.supervisor.close()
            await self.http.stop()
            log.info("service stopped")


    async def _supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run one component until `stop`; when it fails, log why, mark it down (``/readyz``
        503) and run it again after the next backoff delay. It counts as up again once it has
        run for ``_UP_AFTER_S`` without failing."""
        backoff = Backoff()
        while not self.stop.is_set():
            task = asyncio.ensure_future(run())
            try:
                if name in self._down:
                    done, _ = await asyncio.wait({task}, timeout=_UP_AFTER_S)
                    if not done:
                        self._down.pop(name, None)
                        backoff.reset()
                        log.info("%s is running again", name)
                await task
                return
            except asyncio.CancelledError:
                task.cancel()
                raise
            except Exception as exc:
                if self.stop.is_set():
                    return
                self._down[name] = describe(exc)
                self.metrics.restarts.labels(name).inc()
                delay = backoff.next_delay()
                log.error("%s failed (restarting in %.1fs): %s", name, delay, describe(exc))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.stop.wait()


_UP_AFTER_S = 3.0


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
