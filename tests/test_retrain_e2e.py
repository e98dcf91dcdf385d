"""End to end on the bundled real bars (hourly EURUSD, daily GOOG) with a real nats-server,
real LightGBM/Optuna and the on-disk registry: `autoopt retrain` releases, everything lands in
the log, a rerun resumes its studies and is gated against the champion on the same folds, and
`autoopt releases` lists, shows and rolls back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from autoopt.cli.releases import app as releases_app
from autoopt.cli.retrain import app as retrain_app
from autoopt.config import Config, load_config
from autoopt.events import (
    BarBatch,
    Event,
    ModelPromoted,
    ModelReleased,
    ModelRolledBack,
    TrainingFinished,
    TrainingStarted,
    TrialCompleted,
    ValidationVerdict,
)
from autoopt.log import EventLog, NatsSettings
from autoopt.pipeline import run_retrain
from autoopt.registry import ModelRegistry

SYMBOLS = ("EURUSD", "GOOG")


def _config_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "autoopt.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'[nats]\nurls = ["{url}"]\n'
        "[pipeline]\ntrials = 3\npruning = false\n"
        # first run: a permissive gate, so both symbols get a first release
        "[pipeline.gate]\nmargin = 0.0\ndsr_threshold = 0.0\nmin_trades = 0\n"
        "max_pbo = 1.0\nholdout_min_sharpe = -inf\n"
    )
    return path


async def _events(url: str) -> list[Event]:
    log = await EventLog.connect(NatsSettings(urls=[url]))
    try:
        out: list[Event] = []
        for stream in ("MARKET", "TRAINING", "MODELS"):
            out += [e async for e in log.replay(stream)]
        return out
    finally:
        await log.close()


def _of(events: list[Event], cls: type[Event]) -> list:
    return [e for e in events if isinstance(e, cls)]


async def _rerun(config: Config, url: str):  # noqa: ANN202
    log = await EventLog.connect(NatsSettings(urls=[url]))
    try:
        return await run_retrain(config, source="bundled:EURUSD,GOOG", event_log=log)
    finally:
        await log.close()


def test_retrain_end_to_end(tmp_path: Path, nats_server: str) -> None:
    cfg_path = _config_file(tmp_path, nats_server)
    out = tmp_path / "summary.json"
    runner = CliRunner()
    res = runner.invoke(retrain_app, ["--source", "bundled:EURUSD,GOOG", "--symbols",
                                      "EURUSD,GOOG", "--json", str(out), "--config",
                                      str(cfg_path), "--quiet"])
    assert res.exit_code == 0, res.output

    # ---- the summary
    summary = json.loads(out.read_text())
    assert set(summary) == {"run_id", "started_at", "finished_at", "source", "results",
                            "global_best"}
    results = {r["symbol"]: r for r in summary["results"]}
    assert set(results) == set(SYMBOLS)
    for r in results.values():
        assert r["model"] == "lgbm" and r["deployed"] and r["release_id"]
        assert r["n_trials"] == 3 and r["features"] and "num_boost_round" in r["params"]
        assert {"sharpe", "max_drawdown", "n_trades", "auc", "dsr"} <= set(r["metrics"])
        assert r["score"] == r["metrics"]["sharpe"]
        assert any(x.startswith("no_champion") for x in r["reasons"])
    best = max(results.values(), key=lambda r: r["score"])
    assert summary["global_best"]["symbol"] == best["symbol"]

    # ---- the registry holds both releases as current, with selection recorded
    config = load_config(cfg_path)
    registry = ModelRegistry(config.data_dir)
    for s, r in results.items():
        assert registry.current(s) == r["release_id"]
        manifest, _ = registry.load(s)
        assert manifest.features == r["features"] and manifest.model_type == "lightgbm"
        assert {f"perm/{f}" for f in r["features"]} <= set(manifest.feature_importances)

    # ---- everything is in the log
    events = asyncio.run(_events(nats_server))
    bars = _of(events, BarBatch)
    assert sorted((b.symbol, b.n_bars) for b in bars) == [("EURUSD", 5000), ("GOOG", 2148)]
    trials = _of(events, TrialCompleted)
    assert sorted((t.symbol, t.number) for t in trials) == [
        (s, n) for s in SYMBOLS for n in range(3)]
    assert {t.run_id for t in trials} == {summary["run_id"]}
    assert len(_of(events, TrainingStarted)) == 2
    finished = _of(events, TrainingFinished)
    assert len(finished) == 2 and all(f.succeeded for f in finished)
    assert all(f.best_params["features"] == results[f.symbol]["features"] for f in finished)
    assert all(any(k.startswith("importance/perm/") for k in f.metrics) for f in finished)
    verdicts = _of(events, ValidationVerdict)
    assert sorted((v.symbol, v.passed) for v in verdicts) == [("EURUSD", True), ("GOOG", True)]
    released = _of(events, ModelReleased)
    assert {(e.symbol, e.release_id) for e in released} == {
        (s, r["release_id"]) for s, r in results.items()}
    assert len(_of(events, ModelPromoted)) == 2
    assert {e.correlation_id for e in trials + finished + verdicts} == {summary["run_id"]}

    # ---- a rerun on the same data, strict margin: studies resume (no new trials), the
    # champion is refitted on the same folds, the identical challenger cannot beat it
    strict = load_config(cfg_path, overrides={"pipeline": {"gate": {"margin": 0.0}}})
    again = asyncio.run(_rerun(strict, nats_server))
    for r in again.results:
        assert r.study == results[r.symbol]["study"] and r.n_trials == 3
        assert not r.deployed and r.champion == results[r.symbol]["release_id"]
        assert any(x.startswith("below_champion_margin") for x in r.reasons)
        assert registry.current(r.symbol) == results[r.symbol]["release_id"]
    events = asyncio.run(_events(nats_server))
    assert len(_of(events, TrialCompleted)) == 6
    assert len(_of(events, BarBatch)) == 2  # the bars were already stored
    last = [v for v in _of(events, ValidationVerdict) if not v.passed]
    assert len(last) == 2 and all(v.champion_metrics["sharpe"] == v.metrics["sharpe"]
                                  for v in last)

    # ---- releases: list, show, rollback (itself an event)
    res = runner.invoke(releases_app, ["list", "--json"], obj=None,
                        env={"AUTOOPT_CONFIG": str(cfg_path)})
    assert res.exit_code == 0, res.output
    listed = json.loads(res.output)
    assert {(x["symbol"], x["release_id"], x["current"]) for x in listed} == {
        (s, r["release_id"], True) for s, r in results.items()}
    res = runner.invoke(releases_app, ["show", "GOOG"], env={"AUTOOPT_CONFIG": str(cfg_path)})
    assert res.exit_code == 0 and results["GOOG"]["release_id"] in res.output
    res = runner.invoke(releases_app, ["rollback", "GOOG"], env={"AUTOOPT_CONFIG": str(cfg_path)})
    assert res.exit_code != 0 and "no parent" in res.output
    first = results["GOOG"]["release_id"]
    _, files = registry.load("GOOG", first)
    second = registry.save("GOOG", files, model_type="lightgbm", created_at=2**62,
                           data_range=(0, 1), features=results["GOOG"]["features"])
    registry.set_current("GOOG", second.release_id)
    res = runner.invoke(releases_app, ["rollback", "GOOG", "--reason", "bad live fills"],
                        env={"AUTOOPT_CONFIG": str(cfg_path)})
    assert res.exit_code == 0, res.output
    assert registry.current("GOOG") == first
    rolled = _of(asyncio.run(_events(nats_server)), ModelRolledBack)
    assert [(e.symbol, e.release_id, e.from_release_id, e.reason) for e in rolled] == [
        ("GOOG", first, second.release_id, "bad live fills")]


async def test_an_unavailable_trainer_fails_only_its_own_jobs(tmp_path: Path, nats_server: str) -> None:
    config = load_config(_config_file(tmp_path, nats_server), environ={})
    log = await EventLog.connect(config.nats)
    try:
        summary = await run_retrain(
            config, source="bundled:GOOG", event_log=log, models=["lgbm", "no-such-model"], trials=2
        )
    finally:
        await log.close()
    by_model = {r.model: r for r in summary.results}
    assert by_model["lgbm"].error is None and by_model["lgbm"].deployed
    assert "no trainer named 'no-such-model'" in (by_model["no-such-model"].error or "")
    failed = [e for e in _of(await _events(nats_server), TrainingFinished) if not e.succeeded]
    assert [e.trainer for e in failed] == ["no-such-model"]
