"""The policy backtest's engine on seeded synthetic bars (`autoopt.synthetic.planted_bars`):
real decision core, real pipeline steps (LightGBM, Optuna, purged CV, the gate), real files.

The planted case: hourly bars whose return sign persists with probability 0.7 until 60% of the
way through, then with 0.3 (the edge flips sign). `never` keeps the warm-up model and must lose
money after the flip; the degradation trigger retrains on a rolling window and must end with a
higher Sharpe. On a random walk nothing is ever deployed and no policy is distinguishable from
`never`.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pytest

from autoopt.backtest.policies import parse_policies, preset
from autoopt.backtest.result import BacktestResult
from autoopt.backtest.run import run_backtest
from autoopt.config import Config, PipelineConfig
from autoopt.synthetic import planted_bars

FLIP = 0.6
N_BARS = 3_000


def _config(tmp: Path, seed: int = 0) -> Config:
    return msgspec.structs.replace(
        Config(data_dir=str(tmp / "data")),
        pipeline=PipelineConfig(trials=4, seed=seed, train_window_bars=800))


async def _run(tmp: Path, frames: dict[str, pl.DataFrame], policies: str, *,
               cache: str = "cache", delay: float | None = None, seed: int = 0) -> BacktestResult:
    cfg = _config(tmp, seed)
    return await run_backtest(cfg, frames, parse_policies(policies, cfg.policy), warmup=0.3,
                              train_delay_s=delay, cache_dir=tmp / cache)


def _flipped() -> dict[str, pl.DataFrame]:
    return {"EDGE": planted_bars(0, "hourly", 0.7, n=N_BARS, flip_at=FLIP)}


@pytest.fixture(scope="module")
def flipped_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BacktestResult]:
    import asyncio

    tmp = tmp_path_factory.mktemp("flip")
    return tmp, asyncio.run(_run(tmp, _flipped(), "never,degradation"))


def test_a_triggered_policy_beats_never_after_the_edge_flips(
        flipped_run: tuple[Path, BacktestResult]) -> None:
    _, res = flipped_run
    never, degr = res.policy("never"), res.policy("degradation")
    flip_ns = int(_flipped()["EDGE"]["ts"][int(N_BARS * FLIP)])
    path = never.paths["EDGE"]
    after = np.asarray(path.ts) > flip_ns
    assert never.releases == 1 and never.retrains == 0  # the warm-up model, kept to the end
    assert float(np.sum(np.asarray(path.returns)[after])) < 0  # never loses after the flip
    assert degr.retrains >= 1 and degr.releases >= 2
    assert degr.metrics["pooled"]["sharpe"] > never.metrics["pooled"]["sharpe"]
    assert res.comparison is not None
    (test,) = [t for t in res.comparison.tests if t.policy == "degradation"]
    assert test.baseline == "never" and test.verdict == "better" and test.ci_low > 0
    assert any("degradation beats never" in line for line in res.comparison.summary)


def test_a_rerun_recomputes_nothing(
        flipped_run: tuple[Path, BacktestResult]) -> None:
    import asyncio

    tmp, res = flipped_run
    again = asyncio.run(_run(tmp, _flipped(), "never,degradation"))
    assert again.cache_misses == 0 and again.cache_hits >= res.cache_misses
    assert again.run_digest == res.run_digest


def test_same_inputs_give_the_same_digest_from_a_cold_cache(
        flipped_run: tuple[Path, BacktestResult], tmp_path: Path) -> None:
    import asyncio

    _, res = flipped_run
    cold = asyncio.run(_run(tmp_path, _flipped(), "never,degradation", cache="cold"))
    assert cold.cache_hits < res.cache_hits + cold.cache_misses and cold.cache_misses > 0
    assert cold.run_digest == res.run_digest
    assert [p.metrics for p in cold.policies] == [p.metrics for p in res.policies]


def test_two_policies_retraining_at_the_same_point_share_the_retrain(tmp_path: Path) -> None:
    import asyncio

    cfg = _config(tmp_path)
    toml = tmp_path / "weekly2.toml"
    toml.write_text('name = "weekly-again"\n[policy]\nschedule = "0 3 * * 1"\n'
                    "[policy.drift]\nenabled = false\n[policy.degradation]\nenabled = false\n")
    frames = {"EDGE": planted_bars(3, "hourly", 0.7, n=2_000)}
    res = asyncio.run(run_backtest(cfg, frames, parse_policies(f"weekly,{toml}", cfg.policy),
                                   warmup=0.3, cache_dir=tmp_path / "c"))
    a, b = res.policy("weekly"), res.policy("weekly-again")
    assert a.retrains == b.retrains >= 2
    # every retrain of the second is a hit in every stage (fit, judge, and the final fit when
    # the gate passed): same symbol, data range, config and champion; the first computed its
    # own and the warm-up model's (3 stages: it has no champion to beat)
    assert res.cache_hits == 2 * b.retrains + (b.releases - 1)
    assert res.cache_misses == 2 * (a.retrains + 1) + a.releases
    assert a.paths["EDGE"].positions == b.paths["EDGE"].positions


def test_no_look_ahead_changing_later_bars_changes_nothing_before(tmp_path: Path) -> None:
    import asyncio

    base = planted_bars(1, "hourly", 0.7, n=2_000)
    k = 1_500  # bars from k on are rewritten
    rng = np.random.default_rng(99)
    shock = np.concatenate((np.ones(k), np.exp(np.cumsum(rng.normal(0, 0.02, base.height - k)))))
    changed = base.with_columns(*(pl.col(c) * shock for c in ("open", "high", "low", "close")))
    a = asyncio.run(_run(tmp_path, {"EDGE": base}, "never,weekly"))
    b = asyncio.run(_run(tmp_path, {"EDGE": changed}, "never,weekly"))
    t = int(base["ts"][k])  # the first changed bar opens at t; it is known at its close
    for name in ("never", "weekly"):
        pa, pb = a.policy(name).paths["EDGE"], b.policy(name).paths["EDGE"]
        before = [i for i, c in enumerate(pa.ts) if c < t]
        assert len(before) > 100
        assert [pa.positions[i] for i in before] == [pb.positions[i] for i in before]
        assert [pa.release_ids[i] for i in before] == [pb.release_ids[i] for i in before]
        assert [pa.returns[i] for i in before[:-1]] == [pb.returns[i] for i in before[:-1]]
        assert [m for m in pa.markers if m.ts < t] == [m for m in pb.markers if m.ts < t]
    assert a.run_digest != b.run_digest


def test_the_training_delay_is_honoured(tmp_path: Path) -> None:
    import asyncio

    delay = 5 * 3600.0  # five hourly bars
    frames = {"EDGE": planted_bars(2, "hourly", 0.7, n=2_000)}
    res = asyncio.run(_run(tmp_path, frames, "weekly", delay=delay))
    path = res.policy("weekly").paths["EDGE"]
    released_at = {m.release_id: m.ts for m in path.markers if m.kind == "release"}
    later = [m for m in path.markers if m.kind == "release" and m.decided_ts is not None
             and m.ts > path.ts[0]]
    assert later, "the weekly policy released nothing after the warm-up"
    for m in later:
        assert m.ts - m.decided_ts >= delay * 1e9
    for c, rid in zip(path.ts, path.release_ids, strict=True):
        if rid:
            assert c >= released_at[rid]  # no trade uses a model before its release time


def test_on_a_random_walk_nothing_is_deployed_and_no_policy_is_distinguishable(
        tmp_path: Path) -> None:
    import asyncio

    frames = {"RW": planted_bars(11, "hourly", 0.5, n=2_000)}
    res = asyncio.run(_run(tmp_path, frames, "never,weekly,degradation,drift"))
    assert all(p.releases == 0 for p in res.policies), [
        (p.policy, p.releases) for p in res.policies]
    assert res.comparison is not None
    assert all(t.verdict == "indistinguishable" for t in res.comparison.tests)
    assert res.comparison.summary[0].startswith("No policy is distinguishable from never")


def test_policy_presets_and_files(tmp_path: Path) -> None:
    from autoopt.errors import ConfigError

    assert preset("never").policy.schedule is None
    assert preset("weekly").policy.schedule == "0 3 * * 1"
    assert preset("drift").policy.drift.enabled and not preset("drift").policy.degradation.enabled
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy]\nschedul = 'x'\n")
    with pytest.raises(ConfigError, match="bad.toml"):
        parse_policies(str(bad))
    with pytest.raises(ConfigError, match="unknown policy 'monthly'"):
        parse_policies("never,monthly")
    with pytest.raises(ConfigError, match="unique"):
        parse_policies("never,never")
