"""`/metrics`, `/healthz`, `/readyz` over aiohttp, in the service's event loop.

``/healthz``: the process and its event loop answer. ``/readyz``: connected to NATS and the
decision core has caught up with the log (lag ≤ ``service.ready_lag``); 503 with the reason
otherwise, so an orchestrator routes nothing to an instance still replaying history.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from autoopt.errors import ConfigError
from autoopt.service.metrics import ServiceMetrics

ReadyFn = Callable[[], tuple[bool, str]]


class HttpServer:
    def __init__(self, metrics: ServiceMetrics, ready: ReadyFn, host: str, port: int) -> None:
        self._metrics = metrics
        self._ready = ready
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/metrics", self._get_metrics)
        app.router.add_get("/healthz", self._get_health)
        app.router.add_get("/readyz", self._get_ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:  # a used port or a bad address: the operator's to fix, one line
            await self.stop()
            raise ConfigError(
                f"service.http_port: cannot listen on {self._host}:{self._port}: "
                f"{exc.strerror or exc} (another process holds it? choose --port or "
                "service.http_port)"
            ) from exc
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _get_metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _get_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _get_ready(self, request: web.Request) -> web.Response:
        ok, reason = self._ready()
        return web.json_response({"ready": ok, "reason": reason}, status=200 if ok else 503)
