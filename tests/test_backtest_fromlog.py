"""`--from-log`: the period's bars, the champion at its start and the promotions inside it are
read back from a real live log (real nats-server, real retrains, the on-disk registry), the
recorded champions are traded as ``actual``, and every alternative policy starts from the same
champion."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
from typer.testing import CliRunner

from autoopt.backtest.fromlog import read_period
from autoopt.backtest.policies import parse_policies
from autoopt.backtest.run import run_backtest
from autoopt.cli import app
from autoopt.clock import SimulatedClock
from autoopt.config import Config, PipelineConfig
from autoopt.events import ModelPromoted
from autoopt.log import EventLog, NatsSettings
from autoopt.pipeline import run_retrain
from autoopt.pipeline.ingest import ingest_bars
from autoopt.registry import ModelRegistry
from autoopt.synthetic import planted_bars


def test_from_log_trades_the_recorded_champions_and_starts_policies_from_them(
        tmp_path: Path, nats_server: str) -> None:
    asyncio.run(_engine_checks(tmp_path, nats_server))
    # the command: the same period through `autoopt backtest --from-log`
    cfg_file = tmp_path / "autoopt.toml"
    cfg_file.write_text(f'data_dir = "{tmp_path / "data"}"\n[nats]\nurls = ["{nats_server}"]\n'
                        "[pipeline]\ntrials = 4\ntrain_window_bars = 800\n"
                        "[pipeline.gate]\nmargin = 0.0\n")
    start = planted_bars(4, "hourly", 0.7, n=2_400)["ts"][1_400]
    res = CliRunner().invoke(app, ["--config", str(cfg_file), "backtest", "--from-log",
                                   "--symbols", "EDGE", "--start", str(int(start)),
                                   "--policies", "never,weekly", "-q"])
    assert res.exit_code == 0, res.output
    assert "actual" in res.output and "run digest" in res.output.lower()
    bad = CliRunner().invoke(app, ["--config", str(cfg_file), "backtest", "--from-log",
                                   "--symbols", "EDGE"])
    assert bad.exit_code == 2 and "--from-log needs --symbols and --start" in bad.output


async def _engine_checks(tmp_path: Path, nats_server: str) -> None:
    bars = planted_bars(4, "hourly", 0.7, n=2_400)
    ts = bars["ts"].to_numpy()
    cfg = msgspec.structs.replace(
        Config(data_dir=str(tmp_path / "data")),
        pipeline=PipelineConfig(trials=4, train_window_bars=800,
                                gate=msgspec.convert({"margin": 0.0}, type=type(
                                    PipelineConfig().gate))))
    log = await EventLog.connect(NatsSettings(urls=[nats_server]))
    try:
        promoted = []
        for cut in (1_200, 1_800):  # two nightly runs, each on the bars known at its time
            (tmp_path / str(cut)).mkdir()
            path = tmp_path / str(cut) / "EDGE.csv"
            bars[:cut].with_columns(pl.from_epoch("ts", time_unit="ns")).write_csv(path)
            summary = await run_retrain(cfg, source=f"file:{path}", symbols=["EDGE"],
                                        event_log=log, clock=SimulatedClock(int(ts[cut])))
            promoted.append(summary.results[0].release_id)
        assert promoted[0] is not None, "the first nightly run must release a model"
        events = [e async for e in log.replay("autoopt.model.promoted.EDGE")]
        assert [e.release_id for e in events if isinstance(e, ModelPromoted)] == [
            r for r in promoted if r is not None]

        # the engine kept trading: the rest of the bars reach the log too
        await ingest_bars(log, "EDGE", "1h", bars, last_ts=int(ts[1_799]))
        start = int(ts[1_400])
        from autoopt.builtins.log_source import EventLogSource

        frames, actual = await read_period(log, ModelRegistry(cfg.data_dir), ["EDGE"],
                                           EventLogSource(), start, None)
    finally:
        await log.close()
    a = actual["EDGE"]
    assert a.at_start is not None and a.at_start.release_id == promoted[0]
    if promoted[1] is not None:
        assert [(t, r.release_id) for t, r in a.swaps if r] == [(int(ts[1_800]), promoted[1])]
    res = await run_backtest(cfg, frames, parse_policies("never,weekly", cfg.policy),
                             trade_from_ns=start, actual=actual,
                             cache_dir=tmp_path / "cache")
    real, never = res.policy("actual"), res.policy("never")
    assert [p.policy for p in res.policies] == ["actual", "never", "weekly"]
    pa, pn = real.paths["EDGE"], never.paths["EDGE"]
    assert pa.ts[0] >= start and pa.ts == pn.ts
    # never starts from the recorded champion, so it trades exactly like actual until the
    # recorded second release (if any) swaps in
    swap = int(ts[1_800]) if promoted[1] is not None else pa.ts[-1] + 1
    same = [i for i, c in enumerate(pa.ts) if c < swap]
    assert len(same) > 100
    assert [pa.positions[i] for i in same] == [pn.positions[i] for i in same]
    assert set(pa.release_ids[i] for i in same) == {promoted[0]}
    assert np.isfinite(real.metrics["pooled"]["sharpe"])
    assert res.comparison is not None
    assert {t.baseline for t in res.comparison.tests} >= {"actual"}
