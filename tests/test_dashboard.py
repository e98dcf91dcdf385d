"""The live dashboard at ``/``: a real `autoopt serve` on the session's story log (a decision,
a real retrain that released, drift, a refusal), loaded by a real browser (Debian's chromium
through playwright) that sees the release, then sees the page update after new events; the
token rule beyond loopback over real HTTP. Screenshots are kept in test-artifacts/."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest

from autoopt.config import load_config
from autoopt.events import JobProgress, ModelReleased
from autoopt.log import EventLog
from autoopt.service.dashboard import DashboardFeed, check_access, report_url
from autoopt.service.http import HttpServer
from autoopt.service.metrics import ServiceMetrics
from autoopt.testing.story import Story

CHROMIUM = Path(os.environ.get("AUTOOPT_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("AUTOOPT_TEST_ARTIFACTS", "test-artifacts"))

CONFIG = """
[policy]
schedule = "off"
[policy.drift]
enabled = false
[policy.degradation]
enabled = false
[service]
http_host = "127.0.0.1"
http_port = {port}
tick_interval_s = 0
max_job_age_s = 0.001
dashboard_refresh_s = 0.3
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(story_log: tuple[dict[str, str], Story],
           tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Story]]:
    """(base URL, env, story) of an `autoopt serve` on the story's log, with a data dir of its
    own (its checkpoints and registry never touch the story's)."""
    env, story = story_log
    port = _free_port()
    cfg = tmp_path / "autoopt.toml"
    cfg.write_text(CONFIG.format(port=port))
    full = {**os.environ, **env, "AUTOOPT_CONFIG": str(cfg),
            "AUTOOPT_DATA_DIR": str(tmp_path / "data")}
    out = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "autoopt.cli", "serve"], env=full,
                            stdout=out.open("w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(base + "/dashboard/version", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not answer:\n{out.read_text()[-3000:]}")
            time.sleep(0.3)
        yield base, full, story
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def _append(env: dict[str, str], *events: object) -> None:
    config = load_config(environ=env)

    async def go() -> None:
        log = await EventLog.connect(config.nats)
        try:
            for e in events:
                await log.append(e)  # type: ignore[arg-type]
        finally:
            await log.close()

    # in a thread of its own: playwright's sync API holds this thread's event loop
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, go()).result(timeout=60)


def test_dashboard_shows_the_release_and_updates_live(
    served: tuple[str, dict[str, str], Story]
) -> None:
    from playwright.sync_api import sync_playwright

    base, env, story = served
    if not CHROMIUM.exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: apt-get install -y chromium")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/", wait_until="load", timeout=60_000)
            text = page.inner_text("main")
            assert story.release_id in text  # the champion the test's retrain released
            assert "retrain: drift.psi" in text  # the decision, with its reason
            assert f"refused {story.refused.run_id}/GOOG/lgbm" in text  # and the refusal
            assert "DRIFT psi 0.42/0.2" in text  # the drift since
            assert re.search(r"Last 7 days: \d+ releases?, \d+ refusals?, \d+ retrains?", text)
            page.screenshot(path=str(ARTIFACTS / "dashboard-loaded.png"), full_page=True)
            before = page.evaluate("document.body.dataset.version")

            # a new release of another symbol and a job in progress: the page follows
            rel = ModelReleased.new(symbol="AAPL", release_id="dash-live-1", model_type="lgbm",
                                    sha256="0" * 64, uri="file:///nowhere", trainer="lgbm",
                                    metrics={"sharpe": 1.25})
            prog = JobProgress.new(job="dash-run-1", symbol="AAPL", model="lgbm",
                                   stage="trial 2 complete", done=3, total=7)
            _append(env, rel, prog)
            page.wait_for_function(
                "document.querySelector('main').innerText.includes('dash-live-1')",
                timeout=30_000)
            text = page.inner_text("main")
            assert page.evaluate("document.body.dataset.version") != before
            assert "3/7 trial 2 complete" in text
            assert page.locator("progress").count() >= 1
            page.screenshot(path=str(ARTIFACTS / "dashboard-updated.png"), full_page=True)

            # the release links to its report, built from the log
            page.click(f"text={story.release_id}")
            page.wait_for_function("document.body.dataset.plotted !== undefined",
                                   timeout=60_000)
            assert "retrain because drift.psi" in page.inner_text("body")
        finally:
            browser.close()
    assert errors == []


def test_dashboard_access_rules() -> None:
    none: dict[str, str] = {}
    assert check_access("127.0.0.1", "", none, none, none) == (0, "")
    status, why = check_access("0.0.0.0", "", none, none, none)
    assert status == 403 and "service.dashboard_token" in why
    assert check_access("0.0.0.0", "s3cret", none, none, none)[0] == 401
    assert check_access("0.0.0.0", "s3cret", {"Authorization": "Bearer s3cret"}, none,
                        none) == (0, "")
    assert check_access("0.0.0.0", "s3cret", {"Authorization": "Bearer nope"}, none,
                        none)[0] == 401
    assert check_access("0.0.0.0", "s3cret", none, none, {"token": "s3cret"}) == (302, "s3cret")
    assert check_access("0.0.0.0", "s3cret", none, {"autoopt_dashboard": "s3cret"},
                        none) == (0, "")


async def test_dashboard_beyond_loopback_needs_the_token(
    story_log: tuple[dict[str, str], Story]
) -> None:
    env, story = story_log
    log = await EventLog.connect(load_config(environ=env).nats)
    feed = DashboardFeed(log, refresh_s=60)
    await feed.load()
    metrics = ServiceMetrics()
    metrics.watch_models(feed.state)
    http = HttpServer(metrics, lambda: (True, "ok"), "0.0.0.0", 0, dashboard=feed,
                      token="s3cret")
    port = await http.start()
    try:
        url = f"http://127.0.0.1:{port}"
        # an IP address is a host aiohttp keeps cookies for only with unsafe=True
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.get(url + "/") as r:
                assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
            async with s.get(url + "/metrics") as r:  # probes and metrics stay open
                assert r.status == 200
                scraped = await r.text()
            async with s.get(url + "/", headers={"Authorization": "Bearer s3cret"}) as r:
                assert r.status == 200 and story.release_id in await r.text()
            async with s.get(url + "/?token=s3cret") as r:  # cookie, then the page
                assert r.status == 200 and str(r.url) == url + "/"
                assert story.release_id in await r.text()
            async with s.get(url + "/reports/retrain/nope",
                             headers={"Authorization": "Bearer s3cret"}) as r:
                assert r.status == 404 and "nope" in await r.text()
            # the page's links carry ids as query values: a symbol with a slash survives
            link = report_url("release", "BTC/USDT")
            assert link == "/reports/release?id=BTC%2FUSDT"
            async with s.get(url + link, headers={"Authorization": "Bearer s3cret"}) as r:
                assert r.status == 404 and "BTC/USDT: the log holds no champion" in await r.text()
    finally:
        await http.stop()
        await log.close()
    # model quality on /metrics, from the same projection
    result = story.released.results[0]
    assert f'autoopt_model_expected_sharpe{{symbol="GOOG"}} {result.metrics["sharpe"]}' in scraped
    assert 'autoopt_refusal_streak{symbol="GOOG"} 1.0' in scraped
    assert 'autoopt_drifted{symbol="GOOG"} 1.0' in scraped
    assert 'autoopt_drift_statistic{statistic="psi",stream="features",symbol="GOOG"} 0.42' in scraped
    assert 'autoopt_model_age_seconds{symbol="GOOG"}' in scraped
    assert 'autoopt_gate_outcomes_total{outcome="refused"}' in scraped
    assert 'autoopt_training_last_duration_seconds{model="lgbm",symbol="GOOG"}' in scraped
