"""`autoopt report retrain|release|ab` and `retrain --report`: self-contained pages built from a
real log (the session's ``story_log``: a decision, a real retrain that released, drift, a
refusal), drawn offline by a real browser (Debian's chromium through playwright)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from autoopt.cli import app
from autoopt.config import load_config
from autoopt.events import (
    ExperimentCreated,
    ExperimentStarted,
    SignalEmitted,
    SignalRouted,
    TradeOutcome,
    VariantSpec,
)
from autoopt.reports.ab import confidence_sequence
from autoopt.runtime import open_event_log
from autoopt.testing.story import Story

CHROMIUM = Path(os.environ.get("AUTOOPT_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("AUTOOPT_TEST_ARTIFACTS", "test-artifacts"))


def _cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args), env=env)
    crash = "" if res.exception is None or isinstance(res.exception, SystemExit) else (
        f"{type(res.exception).__name__}: {res.exception}")
    return res.exit_code, res.output + crash


def _draw(path: Path, shot: str) -> tuple[int, int, list[str], list[str], str]:
    """Open ``path`` offline in chromium; (figures on the page, figures drawn, errors,
    requests, text); a full-page screenshot kept in the artifacts dir."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: apt-get install -y chromium")
    url = path.resolve().as_uri()
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("**/*", lambda r: r.continue_() if r.request.url == url else r.abort())
            page.goto(url, wait_until="load", timeout=60_000)
            page.wait_for_function("document.body.dataset.plotted !== undefined", timeout=60_000)
            n = page.locator("div.plotly-graph-div").count()
            drawn = int(page.evaluate("document.body.dataset.plotted"))
            drawn_svg = page.evaluate(
                "document.querySelectorAll('div.plotly-graph-div .main-svg').length")
            text = page.inner_text("body")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
        finally:
            browser.close()
    assert drawn_svg >= n
    return n, drawn, errors, requests, text


def test_retrain_report_from_the_log(story_log: tuple[dict[str, str], Story],
                                     tmp_path: Path) -> None:
    env, story = story_log
    out = tmp_path / "retrain.html"
    code, text = _cli(env, "report", "retrain", story.released.run_id, "--out", str(out))
    assert code == 0, text
    assert out.stat().st_size < 5_000_000
    n, drawn, errors, requests, body = _draw(out, "report-retrain.png")
    assert errors == [] and requests == [out.resolve().as_uri()]
    # equity, drawdown, Sharpe per fold, importances, Optuna history, parameter importances
    assert n == drawn >= 6
    result = story.released.results[0]
    assert "released" in body and story.release_id in body
    assert f"{result.metrics['sharpe']:.4g}" in body  # the gate's Sharpe, in the verdict table
    assert "Optuna history" in body and "Sharpe per fold" in body

    # the refused run: a challenger with no artifact, against the champion on the same folds
    code, text = _cli(env, "report", "retrain", story.refused.run_id, "--out", str(out))
    assert code == 0, text
    page = out.read_text()
    assert "refused" in page and f"champion {story.release_id}" in page
    assert "champion sharpe" in page  # per-fold table has the champion's columns

    code, text = _cli(env, "report", "retrain", "no-such-run", "--out", str(out))
    assert code == 2 and "no-such-run" in text and "no training of that run" in text


def test_retrain_writes_its_report(story_log: tuple[dict[str, str], Story],
                                   tmp_path: Path) -> None:
    env, _ = story_log
    out = tmp_path / "run.html"
    code, text = _cli({**env, "AUTOOPT_PIPELINE__TRIALS": "2", "AUTOOPT_PIPELINE__PRUNING": "false"},
                      "retrain", "--source", "bundled:BTCUSD", "--symbols", "BTCUSD", "--quiet",
                      "--report", str(out))
    assert code == 0, text  # released or refused: the report is written either way
    assert "report written to" in text and out.is_file()
    page = out.read_text()
    assert "BTCUSD · lgbm" in page and 'class="fig"' in page


def test_release_report_tells_the_story(story_log: tuple[dict[str, str], Story],
                                        tmp_path: Path) -> None:
    env, story = story_log
    out = tmp_path / "release.html"
    code, text = _cli(env, "report", "release", "GOOG", "--out", str(out))
    assert code == 0, text
    page = out.read_text()
    assert story.release_id in page and "retrain because drift.psi" in page
    assert "refused" in page and "Drift readings" in page
    n, drawn, errors, _, body = _draw(out, "report-release.png")
    assert errors == [] and n == drawn >= 3
    assert story.refused.run_id in body  # the refusal in the verdict table
    code, text = _cli(env, "report", "release", "GOOG", "nope", "--out", str(out))
    assert code == 2 and "no release 'nope'" in text


def _experiment(env: dict[str, str], release: str) -> None:
    """An experiment on a symbol of its own with routed signals and outcomes, as the router
    and the engine write them (the challenger earns more)."""
    config = load_config(environ=env)

    async def go() -> None:
        log = await open_event_log(config)
        try:
            await log.append(ExperimentCreated.new(
                experiment="rpt-exp", symbol="ETHUSDT", seed="s", min_samples=20,
                variants=[VariantSpec(name="control", release_id=release, weight=0.5),
                          VariantSpec(name="chal", release_id="r-chal", weight=0.5)],
                guardrails={"max_drawdown": 0.5}))
            await log.append(ExperimentStarted.new(experiment="rpt-exp"))
            rng = np.random.default_rng(3)
            events = []
            for i in range(300):
                variant = "control" if i % 2 else "chal"
                sig = SignalEmitted.new(symbol="ETHUSDT", signal_id=f"x{i}", side="long",
                                        confidence=1.0)
                ret = float(rng.normal(0.006 if variant == "chal" else 0.0, 0.01))
                events += [
                    SignalRouted.new(cause=sig, step="r", symbol="ETHUSDT", signal_id=f"x{i}",
                                     experiment="rpt-exp", variant=variant, release_id="r"),
                    TradeOutcome.new(symbol="ETHUSDT", trade_id=f"y{i}", side="long", qty=1.0,
                                     entry_price=1.0, exit_price=1.0 + ret, fees=0.0, pnl=ret,
                                     return_=ret, signal_id=f"x{i}"),
                ]
            await log.append_many(events)
        finally:
            await log.close()

    asyncio.run(go())


def test_ab_report_shows_outcomes_sequence_and_guardrails(
    story_log: tuple[dict[str, str], Story], tmp_path: Path
) -> None:
    env, story = story_log
    _experiment(env, story.release_id)
    out = tmp_path / "ab.html"
    code, text = _cli(env, "report", "ab", "rpt-exp", "--out", str(out))
    assert code == 0, text
    n, drawn, errors, _, body = _draw(out, "report-ab.png")
    assert errors == [] and n == drawn == 2  # cumulative outcomes, chal's confidence sequence
    assert "Decision now: promote chal" in body
    assert "dd " in body and "/0.5" in body  # the guardrail with the figure it watches
    assert "mSPRT (always valid)" in body
    code, text = _cli(env, "report", "ab", "nope", "--out", str(out))
    assert code == 2 and "no experiment named 'nope'" in text


def test_confidence_sequence_narrows_and_separates() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.0, 0.01, 2000), rng.normal(0.004, 0.01, 2000)
    cs = confidence_sequence(a, b, alpha=0.05, tuning=5000.0)
    width = cs["high"] - cs["low"]
    assert np.all(np.diff(width) <= 1e-15)  # the running intersection never widens
    assert cs["low"][-1] > 0 and cs["p"][-1] < 0.05  # a real difference is found
    same = confidence_sequence(a, rng.normal(0.0, 0.01, 2000), alpha=0.05, tuning=5000.0)
    assert same["low"][-1] < 0 < same["high"][-1]
