"""Calendar-grid validation (``[pipeline.validation] grid``) and the backtest's retrains keyed by
the evidence they see: the grid's folds and holdout are whole blocks anchored at the epoch, two
retrains in one block compute the identical fit, a retrain after the next boundary a different
one, sharing changes no policy's figures, no look-ahead, and the grid off changes nothing.

Real LightGBM, Optuna and files on seeded synthetic bars (`autoopt.synthetic.planted_bars`).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pytest

from autoopt.backtest.policies import parse_policies
from autoopt.backtest.run import run_backtest
from autoopt.backtest.training import Fitted, RetrainCache, _Request, bars_ipc, run_stage
from autoopt.config import Config, PipelineConfig, ValidationSettings, load_config
from autoopt.errors import ConfigError
from autoopt.pipeline.dataset import build_dataset, make_folds, validation_policy
from autoopt.pipeline.evidence import evidence_bars, holdout_split
from autoopt.runtime import open_plugins
from autoopt.synthetic import planted_bars
from autoopt.validation.cv import (
    GRID_EPOCH_NS,
    GridWalkForward,
    PurgedWalkForward,
    grid_boundary,
    grid_floor,
    parse_grid,
)

H = 3_600 * 1_000_000_000
WEEK = 7 * 24 * H


def _config(tmp: Path, grid: str = "7d", **pipeline: object) -> Config:
    return msgspec.structs.replace(
        Config(data_dir=str(tmp / "data")),
        pipeline=PipelineConfig(trials=4, seed=0, threads=1,
                                validation=ValidationSettings(grid=grid), **pipeline))


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def _dataset(config: Config, bars: pl.DataFrame):  # type: ignore[no-untyped-def]
    fs = open_plugins(config).component("feature_set", config.pipeline.feature_set)
    return build_dataset("EDGE", bars, fs, config.pipeline.label, validation_policy({}))


# ------------------------------------------------------------------------------ the folds


def test_grid_test_blocks_are_whole_weeks_from_monday_midnight(tmp_path: Path) -> None:
    assert _utc(GRID_EPOCH_NS).weekday() == 0 and _utc(GRID_EPOCH_NS).hour == 0
    config = _config(tmp_path)
    bars = planted_bars(0, "hourly", 0.7, n=2_000)
    ev = evidence_bars(config, bars)
    assert ev is not None
    b = grid_boundary(bars["ts"].to_numpy(), WEEK)  # the last Monday by the last bar's close
    assert (b - GRID_EPOCH_NS) % WEEK == 0 and b <= int(bars["ts"][-1]) + H < b + WEEK
    assert int(ev["ts"][-1]) < b <= int(ev["ts"][-1]) + H  # the bars that open before it
    assert ev.height < bars.height and ev["ts"].to_list() == bars["ts"].to_list()[: ev.height]
    ds = _dataset(config, ev)
    folds = make_folds(ds, config.pipeline.cv, WEEK)
    assert len(folds) == config.pipeline.cv.n_splits
    starts = []
    for train, test in folds:
        first, last = _utc(int(ds.ts[test[0]])), int(ds.ts[test[-1]])
        assert (first.weekday(), first.hour) == (0, 0)  # a block starts on Monday 00:00 UTC
        assert last < int(ds.ts[test[0]]) + WEEK  # ... and holds one week at most
        assert np.all(np.diff(test) == 1)
        assert int(train[-1]) < int(test[0])  # walk-forward: training before the test block
        assert np.all(ds.t1[train] < test[0])  # purged
        starts.append(int(ds.ts[test[0]]))
    assert np.all(np.diff(starts) == WEEK)  # consecutive whole weeks, the last ones there are
    assert grid_floor(starts[-1], WEEK) + WEEK == b  # the last block ends at the boundary


def test_grid_holdout_is_whole_blocks_covering_the_fraction(tmp_path: Path) -> None:
    config = _config(tmp_path)
    bars = planted_bars(0, "hourly", 0.7, n=3_000)
    ev = evidence_bars(config, bars)
    assert ev is not None
    ds = _dataset(config, ev)
    split = holdout_split(config, ds)
    assert split is not None
    first = _utc(int(ds.ts[split.start]))
    assert (first.weekday(), first.hour) == (0, 0)
    assert split.size >= config.pipeline.validation.holdout_fraction * ds.n_rows
    assert split.size - 7 * 24 < config.pipeline.validation.holdout_fraction * ds.n_rows
    assert split.dev_end <= split.start and np.all(ds.t1[: split.dev_end] < split.start)


def test_grid_blocks_skip_gaps_and_need_enough_blocks() -> None:
    ts = GRID_EPOCH_NS + np.concatenate((np.arange(0, 6 * 168), np.arange(8 * 168, 10 * 168))) * H
    blocks = GridWalkForward(WEEK, n_splits=3).blocks(ts)
    assert [(b - GRID_EPOCH_NS) // WEEK for b, _, _, _ in blocks] == [5, 8, 9]  # 6, 7 are empty
    with pytest.raises(ConfigError, match="grid blocks"):
        GridWalkForward(WEEK, n_splits=9).blocks(ts)


def test_grid_off_gives_the_folds_of_before(tmp_path: Path) -> None:
    config = _config(tmp_path, grid="")
    ds = _dataset(config, planted_bars(0, "hourly", 0.7, n=1_500))
    cv = config.pipeline.cv
    before = PurgedWalkForward(n_splits=cv.n_splits, test_size=cv.test_fraction,
                               embargo=cv.embargo_fraction,
                               min_train_size=max(1, int(cv.min_train_fraction * ds.n_rows)))
    got = make_folds(ds, cv, None)
    want = tuple(before.split(ds.n_rows, ds.t1))
    assert len(got) == len(want)
    for (a, b), (c, d) in zip(got, want, strict=True):
        assert np.array_equal(a, c) and np.array_equal(b, d)
    assert evidence_bars(config, planted_bars(0, "hourly", 0.7, n=1_500)) is None
    assert parse_grid("off") is None and parse_grid("") is None


@pytest.mark.parametrize("bad", ["7x", "week", "0d", "-1d", "7 days"])
def test_a_bad_grid_is_one_config_error_line(tmp_path: Path, bad: str) -> None:
    toml = tmp_path / "autoopt.toml"
    toml.write_text(f'[pipeline.validation]\ngrid = "{bad}"\n')
    with pytest.raises(ConfigError) as err:
        load_config(toml, environ={"AUTOOPT_DATA_DIR": str(tmp_path)})
    assert "pipeline.validation.grid" in str(err.value) and "\n" not in str(err.value)
    assert parse_grid("7d") == WEEK and parse_grid("12h") == 12 * H and parse_grid("1w") == WEEK


# ------------------------------------------------------------------- the fit, content-addressed


def _fit(cache: RetrainCache, config: Config, bars: pl.DataFrame, cut: int) -> Fitted:
    """The fit stage computed for ``cut`` (never read from a cache), as a worker runs it."""
    req = _Request(stage="fit", key=cache.fit_key("EDGE", cut), symbol="EDGE", cut_ns=cut,
                   bars=bars_ipc(bars), config=msgspec.to_builtins(config), trials=4,
                   boundary=cache.boundary("EDGE", cut))
    out = msgspec.msgpack.decode(run_stage(msgspec.msgpack.encode(req)), type=Fitted)
    assert out.error is None, out.error
    return msgspec.structs.replace(out, compute_s=0.0, cpu_s=0.0)  # timings aside


def test_two_cuts_in_one_block_give_the_identical_fit(tmp_path: Path) -> None:
    config = _config(tmp_path)
    bars = planted_bars(5, "hourly", 0.7, n=1_800)
    cache = RetrainCache(config, {"EDGE": bars}, trials=4, cache_dir=tmp_path / "c")
    ts = bars["ts"].to_numpy()
    # three cuts: Tuesday and Saturday of one week, and the Tuesday after the next boundary
    in_week = (ts - GRID_EPOCH_NS) % WEEK
    tuesday = int(ts[np.flatnonzero((in_week >= 24 * H) & (in_week < 25 * H))[-2]])
    saturday, next_tuesday = tuesday + 4 * 24 * H + 7 * H, tuesday + WEEK
    assert next_tuesday <= ts[-1]
    a, b, c = (_fit(cache, config, bars, t) for t in (tuesday, saturday, next_tuesday))
    assert cache.fit_key("EDGE", tuesday) == cache.fit_key("EDGE", saturday) == a.key == b.key
    assert msgspec.msgpack.encode(a) == msgspec.msgpack.encode(b)  # every figure, bit for bit
    assert cache.boundary("EDGE", next_tuesday) == cache.boundary("EDGE", tuesday) + WEEK
    assert c.key != a.key
    assert c.evidence is not None and a.evidence is not None
    horizon = config.pipeline.label.horizon  # the last block's last rows have no label
    for ev in (a.evidence, c.evidence):
        assert (ev.holdout_rows + horizon) % (7 * 24) == 0  # whole weeks held out
    assert (c.evidence.development_rows, c.evidence.holdout_rows) != (
        a.evidence.development_rows, a.evidence.holdout_rows)
    assert c.returns != a.returns


def _traded(res):  # type: ignore[no-untyped-def]
    return {p.policy: (p.retrains, p.releases, p.refusals, p.failures,
                       {s: (x.positions, x.returns, x.release_ids) for s, x in p.paths.items()})
            for p in res.policies}


def test_sharing_changes_no_policy_and_nightly_retrains_share_the_weeks_fit(
        tmp_path: Path) -> None:
    config = _config(tmp_path)
    frames = {"EDGE": planted_bars(4, "hourly", 0.7, n=2_800)}
    specs = parse_policies("nightly,weekly", config.policy)

    def run(share: bool, name: str):  # type: ignore[no-untyped-def]
        return asyncio.run(run_backtest(config, frames, specs, warmup=0.6, train_delay_s=600.0,
                                        cache_dir=tmp_path / name, share=share))

    ours, alone = run(True, "ours"), run(False, "alone")
    assert _traded(ours) == _traded(alone)
    nightly = ours.policy("nightly")
    weeks = (int(frames["EDGE"]["ts"][-1]) - int(frames["EDGE"]["ts"][1_680])) // WEEK + 2
    assert nightly.retrains >= 40 and nightly.failures == 0 and nightly.releases >= 3
    # the peer computes every stage of every retrain; ours one fit per week (+ the warm-up)
    assert alone.cache_hits == 0
    assert alone.cache_misses >= 2 * (nightly.retrains + ours.policy("weekly").retrains)
    assert ours.cache_misses < alone.cache_misses / 3
    assert ours.cache_misses <= 3 * weeks + 2 * nightly.releases + 2 * nightly.retrains // 7 + 4
    # a nightly retrain within the week of its champion's fit finds nothing better
    assert nightly.refusals >= nightly.retrains // 2


def test_no_look_ahead_with_the_grid(tmp_path: Path) -> None:
    base = planted_bars(1, "hourly", 0.7, n=2_400)
    k = 2_000
    rng = np.random.default_rng(99)
    shock = np.concatenate((np.ones(k), np.exp(np.cumsum(rng.normal(0, 0.02, base.height - k)))))
    changed = base.with_columns(*(pl.col(c) * shock for c in ("open", "high", "low", "close")))
    config = _config(tmp_path)
    specs = parse_policies("weekly,nightly", config.policy)

    def run(frame: pl.DataFrame, name: str):  # type: ignore[no-untyped-def]
        return asyncio.run(run_backtest(config, {"EDGE": frame}, specs, warmup=0.7,
                                        train_delay_s=600.0, cache_dir=tmp_path / name))

    a, b = run(base, "a"), run(changed, "b")
    t = int(base["ts"][k])
    for name in ("weekly", "nightly"):
        assert a.policy(name).failures == 0 and a.policy(name).retrains >= 4
        pa, pb = a.policy(name).paths["EDGE"], b.policy(name).paths["EDGE"]
        before = [i for i, c in enumerate(pa.ts) if c < t]
        assert len(before) > 100
        assert [pa.positions[i] for i in before] == [pb.positions[i] for i in before]
        assert [pa.release_ids[i] for i in before] == [pb.release_ids[i] for i in before]
        assert [pa.returns[i] for i in before[:-1]] == [pb.returns[i] for i in before[:-1]]
        assert [m for m in pa.markers if m.ts < t] == [m for m in pb.markers if m.ts < t]
    assert a.run_digest != b.run_digest
    # the verdicts before t (their reasons carry the gate's figures) are the same
    refused = [m for m in a.policy("nightly").paths["EDGE"].markers
               if m.kind == "refusal" and m.ts < t]
    assert len(refused) >= 10 and all(m.text for m in refused)


def test_the_live_retrain_fits_the_release_on_every_bar(tmp_path: Path) -> None:
    """`fit_candidate` (what `autoopt retrain` runs) with a grid: the evidence from the bars
    before the boundary, the release's rows every training bar (``final``)."""
    from autoopt.pipeline.candidate import fit_candidate

    config = _config(tmp_path)
    bars = planted_bars(2, "hourly", 0.7, n=2_000)
    ev = evidence_bars(config, bars)
    assert ev is not None and ev.height < bars.height
    plugins = open_plugins(config)
    full, gds = _dataset(config, bars), _dataset(config, ev)
    cand = fit_candidate(config, gds, plugins.trainer("lgbm"),
                         plugins.component("validator", "purged_cv"), n_trials=2,
                         study_of=lambda f: "live-grid", final=full)
    assert cand.selected.n_rows == full.n_rows > gds.n_rows
    assert int(cand.task.folds[-1][1][-1]) < gds.n_rows


def test_autoopt_retrain_gates_on_the_grid_and_releases_on_every_bar(
        tmp_path: Path, nats_server: str) -> None:
    """The live path (`run_retrain`, what `autoopt retrain` and the service run): the gate's
    development rows are the grid evidence's, the release learns from every bar."""
    from autoopt.events import TrainingFinished, ValidationVerdict
    from autoopt.log import EventLog, NatsSettings
    from autoopt.pipeline import run_retrain
    from autoopt.pipeline.evidence import development
    from autoopt.registry import ModelRegistry

    bars = planted_bars(2, "hourly", 0.7, n=2_000)
    bars.write_parquet(tmp_path / "EDGE.parquet")
    toml = tmp_path / "autoopt.toml"
    toml.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[nats]\nurls = ["{nats_server}"]\n'
        "[pipeline]\ntrials = 2\npruning = false\nthreads = 1\n"
        '[pipeline.validation]\ngrid = "7d"\n'
        "[pipeline.gate]\nmargin = 0.0\ndsr_threshold = 0.0\nmin_trades = 0\n"
        "max_pbo = 1.0\nholdout_min_sharpe = -inf\n")
    config = load_config(toml, environ={})

    async def go() -> list:  # type: ignore[type-arg]
        log = await EventLog.connect(NatsSettings(urls=[nats_server]))
        try:
            await run_retrain(config, source=f"file:{tmp_path / 'EDGE.parquet'}",
                              event_log=log, symbols=["EDGE"])
            return [e async for e in log.replay("TRAINING")] + [
                e async for e in log.replay("MODELS")]
        finally:
            await log.close()

    events = asyncio.run(go())
    ev = evidence_bars(config, bars)
    assert ev is not None
    evidence, full = _dataset(config, ev), _dataset(config, bars)
    (finished,) = [e for e in events if isinstance(e, TrainingFinished) and e.symbol == "EDGE"]
    assert finished.metrics["gate/development_rows"] == development(config, evidence).n_rows
    (verdict,) = [e for e in events if isinstance(e, ValidationVerdict) and e.symbol == "EDGE"]
    assert verdict.passed, verdict.reasons
    registry = ModelRegistry(config.data_dir)
    assert registry.current("EDGE") is not None
    manifest, _ = registry.load("EDGE")
    assert manifest.data_range.end == full.data_range[1] > int(ev["ts"][-1])
