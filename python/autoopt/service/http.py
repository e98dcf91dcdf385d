"""`/metrics`, `/healthz`, `/readyz` and the dashboard (`/`, `/reports/...`) over aiohttp, in
the service's event loop.

``/healthz``: the process and its event loop answer. ``/readyz``: connected to NATS and the
decision core has caught up with the log (lag ≤ ``service.ready_lag``); 503 with the reason
otherwise, so an orchestrator routes nothing to an instance still replaying history.

The dashboard (`autoopt.service.dashboard`) is read-only; beyond loopback it needs the bearer
token (``service.dashboard_token``); the probes and ``/metrics`` stay open for orchestrators and
Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from autoopt.errors import AutooptError, ConfigError
from autoopt.service.metrics import ServiceMetrics

if TYPE_CHECKING:
    from autoopt.service.dashboard import DashboardFeed

ReadyFn = Callable[[], tuple[bool, str]]


class HttpServer:
    def __init__(self, metrics: ServiceMetrics, ready: ReadyFn, host: str, port: int, *,
                 dashboard: DashboardFeed | None = None, token: str = "") -> None:
        self._metrics = metrics
        self._ready = ready
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.dashboard = dashboard
        self._token = token
        self.last_render_s = 0.0
        """Server time of the last dashboard page (the benchmark reads it)."""

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/metrics", self._get_metrics)
        app.router.add_get("/healthz", self._get_health)
        app.router.add_get("/readyz", self._get_ready)
        if self.dashboard is not None:
            app.router.add_get("/", self._get_page)
            app.router.add_get("/dashboard/version", self._get_version)
            app.router.add_get("/dashboard/body", self._get_body)
            app.router.add_get("/reports/{kind}", self._get_report)
            app.router.add_get("/reports/{kind}/{rest:.+}", self._get_report)
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

    # ------------------------------------------------------------------ dashboard

    def _denied(self, request: web.Request) -> web.Response | None:
        from autoopt.service.dashboard import COOKIE, check_access

        status, detail = check_access(self._host, self._token, request.headers, request.cookies,
                                      request.query)
        if status == 0:
            return None
        if status == 302:
            resp = web.Response(status=302, headers={"Location": request.path})
            resp.set_cookie(COOKIE, detail, httponly=True, samesite="Strict")
            return resp
        return web.Response(status=status, text=detail + "\n",
                            headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)

    async def _get_page(self, request: web.Request) -> web.Response:
        from autoopt.service.dashboard import render_page

        denied = self._denied(request)
        if denied is not None:
            return denied
        assert self.dashboard is not None
        if not self.dashboard.loaded.is_set():  # first read of the log still running
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.dashboard.loaded.wait(), 10.0)
        t0 = time.perf_counter()
        page = render_page(self.dashboard.state, time.time_ns(), self._ready(),
                           self.dashboard.refresh_s)
        self.last_render_s = time.perf_counter() - t0
        return web.Response(text=page, content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    async def _get_version(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        assert self.dashboard is not None
        return web.json_response({"version": self.dashboard.state.version},
                                 headers={"Cache-Control": "no-store"})

    async def _get_body(self, request: web.Request) -> web.Response:
        from autoopt.service.dashboard import render_body

        denied = self._denied(request)
        if denied is not None:
            return denied
        assert self.dashboard is not None
        body = render_body(self.dashboard.state, time.time_ns(), self._ready())
        return web.Response(text=body, content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    async def _get_report(self, request: web.Request) -> web.Response:
        from autoopt.service.dashboard import report_page

        denied = self._denied(request)
        if denied is not None:
            return denied
        assert self.dashboard is not None
        # ?id=...&id=... (what the page links to), or path parts for hand-typed URLs
        parts = request.query.getall("id", []) or [
            p for p in request.match_info.get("rest", "").split("/") if p]
        try:
            page = await report_page(self.dashboard.log, request.match_info["kind"], parts)
        except AutooptError as exc:
            return web.Response(status=404, text=f"{exc}\n")
        return web.Response(text=page, content_type="text/html")
