"""`autoopt tune-risk` end to end: a CSV of synthetic bars, real LightGBM walk-forward
probabilities, real NSGA-II, a real nats-server. It prints the front, the chosen point and the
verdict with its reasons, writes JSON and HTML, records the trials in the ledger (when the
ledger exists) and releases nothing the gate refused; then `releases rollback --params` puts the
previous params back. Bad input is one line and exit code 2."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from autoopt import events as ev
from autoopt.cli import app
from autoopt.log import EventLog, NatsSettings
from autoopt.registry import ModelRegistry
from autoopt.strategy.params import StrategyParams
from autoopt.strategy.release import current_params, release_params
from autoopt.strategy.tuning import Score, dominates
from autoopt.subjects import subject_filter_for_type
from autoopt.synthetic import planted_bars


def _setup(tmp_path: Path, url: str) -> tuple[Path, Path]:
    csv = tmp_path / "EDGE.csv"
    planted_bars(7, "daily", 0.7, n=700).with_columns(
        pl.from_epoch("ts", time_unit="ns")).write_csv(csv)
    cfg = tmp_path / "autoopt.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n[nats]\nurls = ["{url}"]\n'
                   "[risk]\nouter_folds = 2\n")
    return cfg, csv


async def _risk_events(url: str) -> tuple[list[ev.Event], int]:
    log = await EventLog.connect(NatsSettings(urls=[url]))
    try:
        params = [e async for e in log.replay(subject_filter_for_type(ev.RiskParamsUpdated, "EDGE"))]
        rows = [e async for e in log.replay(subject_filter_for_type(ev.TrialLedgered, "EDGE"))]
        assert all(r.source == "risk" and r.days and len(r.days) == len(r.returns) for r in rows)
        return params, len(rows)
    finally:
        await log.close()


def test_tune_risk_prints_front_verdict_writes_outputs_and_releases_only_what_passes(
        tmp_path: Path, nats_server: str) -> None:
    cfg, csv = _setup(tmp_path, nats_server)
    registry = ModelRegistry(tmp_path / "data")
    bad = StrategyParams(min_hold_bars=8, stop_loss_atr=0.3, take_profit_atr=0.4)

    async def release_bad() -> None:
        log = await EventLog.connect(NatsSettings(urls=[nats_server]))
        try:
            await release_params(registry, log, "EDGE", bad, data_range=(1, 2))
        finally:
            await log.close()

    asyncio.run(release_bad())  # the engine trades bad params on a model with a real edge
    out_json, report = tmp_path / "o.json", tmp_path / "r.html"
    res = CliRunner().invoke(app, ["--config", str(cfg), "tune-risk", "--source", f"file:{csv}",
                                   "--symbols", "EDGE", "--trials", "12", "--release",
                                   "--json", str(out_json), "--report", str(report)])
    assert res.exit_code == 0, res.output
    assert "Pareto front" in res.output and "EDGE: gate" in res.output
    (doc,) = json.loads(out_json.read_text())
    assert doc["front"] and doc["chosen"] is not None
    scores = [Score(p["sharpe"], p["max_drawdown"], 0, 0, 0) for p in doc["front"]]
    assert not any(dominates(a, b) for a in scores for b in scores)
    codes = [r["code"] for r in doc["gate"]["reasons"]]
    assert codes[0] in ("beats_neutral", "below_neutral") and "point_chosen" in codes
    # LightGBM's out-of-sample probabilities on a planted edge: tuning beats the bad params
    assert doc["current"] == bad.as_dict() and codes[1] == "beats_current"
    assert doc["oos"]["tuned"]["sharpe"] > doc["oos"]["current"]["sharpe"] + 0.5
    assert doc["n_trials"] == 12 * 3
    assert "<html" in report.read_text()[:200] and "Pareto front" in report.read_text()
    params, ledger = asyncio.run(_risk_events(nats_server))
    assert ledger == 36  # every trial in the ledger, each with its daily return signature
    dsr = next(r for r in doc["gate"]["reasons"] if r["rule"] == "dsr")
    assert "N = effective" in dsr["message"] and "of 36 ledger entries" in dsr["message"]
    if doc["passed"]:
        assert doc["release_id"] and len(params) == 2
        assert current_params(registry, "EDGE") == StrategyParams.from_dict(doc["chosen"]["params"])
    else:  # refused: nothing released, nothing appended
        assert doc["release_id"] is None and len(params) == 1
        assert current_params(registry, "EDGE") == bad


def test_releases_rollback_params_and_bad_input(tmp_path: Path, nats_server: str) -> None:
    cfg, csv = _setup(tmp_path, nats_server)
    a, b = StrategyParams(entry_threshold=0.55), StrategyParams(entry_threshold=0.6)
    registry = ModelRegistry(tmp_path / "data")

    async def two_releases() -> None:
        log = await EventLog.connect(NatsSettings(urls=[nats_server]))
        try:
            await release_params(registry, log, "EDGE", a, data_range=(1, 2))
            await release_params(registry, log, "EDGE", b, data_range=(1, 3))
        finally:
            await log.close()

    asyncio.run(two_releases())
    runner = CliRunner()
    res = runner.invoke(app, ["--config", str(cfg), "releases", "rollback", "EDGE", "--params"])
    assert res.exit_code == 0, res.output
    assert "strategy params" in res.output and '"entry_threshold":0.55' in res.output
    assert current_params(registry, "EDGE") == a
    params, _ = asyncio.run(_risk_events(nats_server))
    assert [e.params["entry_threshold"] for e in params] == [0.55, 0.6, 0.55]
    listed = runner.invoke(app, ["--config", str(cfg), "releases", "list", "EDGE@strategy", "--json"])
    assert listed.exit_code == 0 and listed.output.count('"model_type": "strategy_params"') == 2

    res = runner.invoke(app, ["--config", str(cfg), "releases", "rollback", "EDGE", "--params"])
    assert res.exit_code == 2 and "has no parent" in res.output
    res = runner.invoke(app, ["--config", str(cfg), "tune-risk", "--source", f"file:{csv}",
                              "--symbols", "NOPE"])
    assert res.exit_code == 2 and "NOPE" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
