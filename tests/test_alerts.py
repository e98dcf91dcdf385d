"""Webhook alerts against a real nats-server and a local HTTP receiver (aiohttp): the rules,
generic JSON and Slack payloads, retries with backoff on 5xx, a dead destination recorded as
failed, throttling, no paging for history at start, and every alert stored as `AlertRaised`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from autoopt.alerts.alerter import Alerter
from autoopt.alerts.rules import RuleSettings, RuleState, evaluate
from autoopt.config import load_config
from autoopt.events import (
    AlertRaised,
    DeadLettered,
    ErrorRaised,
    ExperimentConcluded,
    ModelPromoted,
    ModelReleased,
    ModelRolledBack,
    ValidationVerdict,
)
from autoopt.log import EventLog
from autoopt.subjects import subject_filter_for_type


class Receiver:
    """A webhook receiver: ``/json`` answers 503 to its first request (then 200), ``/slack``
    always 200, ``/bad`` 400."""

    def __init__(self) -> None:
        self.got: dict[str, list[dict]] = {"json": [], "slack": [], "bad": []}
        self.json_calls = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/json", self._json)
        app.router.add_post("/slack", self._slack)
        app.router.add_post("/bad", self._bad)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def _json(self, request: web.Request) -> web.Response:
        self.json_calls += 1
        if self.json_calls == 1:
            return web.Response(status=503)
        self.got["json"].append(await request.json())
        return web.Response(status=204)

    async def _slack(self, request: web.Request) -> web.Response:
        self.got["slack"].append(await request.json())
        return web.Response(text="ok")

    async def _bad(self, request: web.Request) -> web.Response:
        self.got["bad"].append(await request.json())
        return web.Response(status=400)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


def _refused(i: int) -> ValidationVerdict:
    return ValidationVerdict.new(symbol="GOOG", challenger=f"c{i}", passed=False, champion="r1",
                                 reasons=["no_champion: x", f"dsr_fail: DSR 0.{i} < 0.95"],
                                 metrics={"sharpe": 0.1})


async def test_alerts_reach_webhooks_and_the_log(event_log: EventLog, receiver: Receiver) -> None:
    config = load_config(environ={}, overrides={"alerts": {
        "enabled": True, "refusal_streak": 3, "retries": 2, "backoff_s": 0.05, "timeout_s": 2.0,
        "destinations": [
            {"name": "ops", "url_secret": receiver.url + "/json"},
            {"name": "chat", "url_secret": receiver.url + "/slack", "format": "slack",
             "min_severity": "warning"},
            {"name": "gone", "url_secret": "http://127.0.0.1:9/hook", "rules": ["service_error"]},
            {"name": "wrong", "url_secret": receiver.url + "/bad", "rules": ["rollback"]},
        ]}})
    # history before the alerter starts: two refusals (no page for them, but they count)
    for i in range(2):
        await event_log.append(_refused(i))
    alerter = Alerter(event_log, config.alerts)
    await alerter.catch_up()
    assert alerter.raised == []

    await event_log.append(_refused(2))  # the third in a row
    for seq in (7, 8):  # two dead letters from one stream within the cooldown: one alert
        await event_log.append(DeadLettered.new(stream="SIGNALS", subject="autoopt.signal.x.y",
                                                seq=seq, consumer="ab-router", error="bad",
                                                payload=b"\x00"))
    await event_log.append(ModelPromoted.new(symbol="GOOG", release_id="r2",
                                             previous_release_id="r1", reason="gate passed"))
    await event_log.append(ModelRolledBack.new(symbol="GOOG", release_id="r1",
                                               from_release_id="r2", reason="guardrail"))
    await event_log.append(ErrorRaised.new(component="jobs", error_type="DataError",
                                           message="no bars"))
    async with aiohttp.ClientSession() as session:
        raised = await alerter.step(session)
    by_rule = {a.rule: a for a in raised}
    assert [a.rule for a in raised] == ["refusal_streak", "dead_letter", "release", "rollback",
                                        "service_error"]
    streak = by_rule["refusal_streak"]
    assert streak.details["streak"] == 3 and "dsr_fail: DSR 0.2 < 0.95" in streak.text
    # generic JSON: everything, after one 503 retried
    assert receiver.json_calls == 6
    assert [p["rule"] for p in receiver.got["json"]] == [a.rule for a in raised]
    assert receiver.got["json"][0]["details"]["streak"] == 3
    # Slack: warnings and worse only, in Slack's shape
    assert len(receiver.got["slack"]) == 4
    assert receiver.got["slack"][0]["text"].startswith(":warning: *GOOG: 3 challengers refused")
    assert receiver.got["slack"][0]["blocks"][0]["type"] == "section"
    # the dead destination and the 400 are recorded, named, never with their URL
    err = by_rule["service_error"]
    assert err.delivered == ["ops", "chat"] and "gone" in err.failed
    assert "after 3 attempts" in err.failed["gone"] and "127.0.0.1:9" not in err.failed["gone"]
    assert by_rule["rollback"].failed == {"wrong": "wrong: HTTP 400"}  # 4xx: not retried
    assert len(receiver.got["bad"]) == 1
    # each alert is an event too
    stored = [e async for e in event_log.replay(subject_filter_for_type(AlertRaised))]
    assert [e.rule for e in stored] == [a.rule for a in raised]
    assert stored[0].delivered == ["ops", "chat"] and stored[0].cause_id

    # nothing new: nothing raised
    async with aiohttp.ClientSession() as session:
        assert await alerter.step(session) == []


def test_rules_throttle_and_guardrails() -> None:
    state, settings = RuleState(), RuleSettings(cooldown_s=60.0, refusal_streak=2)
    t = 1_700_000_000 * 10**9
    err = ErrorRaised.new(component="jobs", error_type="E", message="m")
    assert len(evaluate(state, err, t, settings)) == 1
    assert evaluate(state, err, t + 10 * 10**9, settings) == []  # within the cooldown
    again = evaluate(state, err, t + 61 * 10**9, settings)
    assert len(again) == 1 and again[0].details["suppressed_since_last"] == 1
    stop = ExperimentConcluded.new(experiment="e1", winner=None,
                                   reason="guardrail: challenger 'b' drawdown 0.3 > 0.2")
    assert [a.rule for a in evaluate(state, stop, t, settings)] == ["guardrail"]
    fine = ExperimentConcluded.new(experiment="e2", winner="b", reason="b is better")
    assert evaluate(state, fine, t, settings) == []
    # a pass resets the streak; streaks alert at every multiple
    rules = [evaluate(state, v, t, settings) for v in (_refused(1), _refused(2))]
    assert [len(r) for r in rules] == [0, 1]
    ok = ValidationVerdict.new(symbol="GOOG", challenger="c9", passed=True)
    assert evaluate(state, ok, t, settings) == [] and state.streak["GOOG"] == 0
    only = RuleSettings(enabled=("drift",))
    assert evaluate(RuleState(), err, t, only) == []
    # one alert per new champion: on the promotion, or on the release where nothing promotes
    released = ModelReleased.new(symbol="GOOG", release_id="r5", model_type="lgbm",
                                 sha256="0" * 64, uri="file:///x")
    promoted = ModelPromoted.new(symbol="GOOG", release_id="r5")
    by_promotion = [a.rule for e in (released, promoted) for a in evaluate(state, e, t, settings)]
    assert by_promotion == ["release"]
    no_promotions = RuleSettings(champion_event="released")
    assert [a.rule for a in evaluate(RuleState(), released, t, no_promotions)] == ["release"]


def test_serve_delivers_alerts(nats_server: str, tmp_path: Path) -> None:
    """`autoopt serve` with [alerts]: an error recorded in the log reaches a webhook, and the
    alert is stored as an event (a stdlib HTTP server in a thread as the receiver)."""
    got: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    cfg = tmp_path / "autoopt.toml"
    cfg.write_text(
        '[policy]\nschedule = "off"\n[service]\nhttp_port = 0\ntick_interval_s = 0\n'
        "[alerts]\nenabled = true\npoll_s = 0.3\ncooldown_s = 0\n[[alerts.destinations]]\nname = \"ops\"\n"
        f'url_secret = "http://127.0.0.1:{hook.server_port}/hook"\n')
    env = {**os.environ, "AUTOOPT_CONFIG": str(cfg), "AUTOOPT_NATS_URL": nats_server,
           "AUTOOPT_DATA_DIR": str(tmp_path / "data")}
    out = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "autoopt.cli", "serve"], env=env,
                            stdout=out.open("w"), stderr=subprocess.STDOUT)
    config = load_config(cfg, environ=env)

    async def scenario() -> list[AlertRaised]:
        log = await EventLog.connect(config.nats)
        try:
            await log.ensure_streams()
            deadline = time.monotonic() + 60
            while not got and time.monotonic() < deadline:  # until the alerter follows
                await log.append(ErrorRaised.new(component="engine", error_type="Boom",
                                                 message="feed lost"))
                await asyncio.sleep(3.0)
            await asyncio.sleep(1.0)
            return [e async for e in log.replay(subject_filter_for_type(AlertRaised))]
        finally:
            await log.close()

    try:
        stored = asyncio.run(scenario())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        hook.shutdown()
    assert got, out.read_text()[-3000:]
    assert got[0]["rule"] == "service_error" and got[0]["text"] == "engine failed: Boom: feed lost"
    assert stored and stored[0].delivered == ["ops"] and stored[0].rule == "service_error"
