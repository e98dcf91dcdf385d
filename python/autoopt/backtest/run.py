"""`run_backtest`: load the bars once, validate them, run every (policy, symbol) simulation
concurrently (retrains shared through one `RetrainCache`), then compute the figures and the
comparison, and the run digest.

Separate from live: nothing here appends to the live streams or touches the live registry or
Optuna storage; retrains live in ``<data_dir>/backtests/cache`` (content-addressed), and the
caller records one summary event in the live log. The digest covers the inputs (bars, config,
policies, seed, trials, delay) and every decision, release, position and return, so the same
inputs give the same digest and any change shows.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import polars as pl

from autoopt.backtest.engine import (
    ProgressFn,
    assemble,
    prepare_symbol,
    replay_actual,
    simulate,
)
from autoopt.backtest.fromlog import Actual
from autoopt.backtest.policies import PolicySpec, preset
from autoopt.backtest.result import BacktestResult, SymbolPath
from autoopt.backtest.risk_retune import RetuneCache
from autoopt.backtest.training import Outcome, RetrainCache, digest
from autoopt.config import Config
from autoopt.errors import ConfigError, DataError
from autoopt.pipeline.dataset import periods_per_year, validation_policy


def parse_warmup(text: str | float) -> float:
    """``30%`` / ``0.3`` → 0.3 (the share of each symbol's bars used to train the first model)."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ConfigError(f"--warmup {text!r}: expected a share like 30% or 0.3") from None
    if not 0.05 <= value <= 0.9:
        raise ConfigError(f"--warmup {text!r}: must be between 5% and 90%")
    return value


def _validated(config: Config, frames: dict[str, pl.DataFrame], start_ns: int | None,
               end_ns: int | None) -> dict[str, pl.DataFrame]:
    from autoopt.data import validate_bars

    policy = validation_policy(config.pipeline.data_policy)
    out = {}
    for sym, df in frames.items():
        clean, _ = validate_bars(df, sym, policy)
        if start_ns is not None:
            clean = clean.filter(pl.col("ts") >= start_ns)
        if end_ns is not None:
            clean = clean.filter(pl.col("ts") <= end_ns)
        if clean.height < 100:
            raise DataError(f"{sym}: {clean.height} bars in the backtest range; need >= 100")
        out[sym] = clean
    return out


async def run_backtest(
    config: Config,
    frames: dict[str, pl.DataFrame],
    policies: Sequence[PolicySpec],
    *,
    source: str = "",
    start_ns: int | None = None,
    end_ns: int | None = None,
    warmup: float = 0.3,
    trials: int | None = None,
    train_delay_s: float | None = None,
    jobs: int = 1,
    cache_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
    share: bool = True,
    trade_from_ns: int | None = None,
    actual: dict[str, Actual] | None = None,
) -> BacktestResult:
    """Backtest ``policies`` on ``frames`` (symbol → bars); see the package docs. ``share``:
    policies share retrains at the same point (False: each computes its own, for comparison).

    ``--from-log``: ``trade_from_ns`` starts trading at that instant (earlier bars are history)
    and ``actual`` (`autoopt.backtest.fromlog.read_period`) gives each symbol's recorded
    champion at the start, which every policy starts from, and the recorded timeline, traded
    as the extra policy ``actual`` and used as the first baseline of the comparison."""
    from autoopt.backtest.compare import compare_policies
    from autoopt.backtest.metrics import fill_metrics

    if not policies:
        raise ConfigError("--policies: give at least one policy")
    t0 = time.perf_counter()
    bars = _validated(config, frames, start_ns, end_ns)
    n_trials = int(trials or config.pipeline.trials)
    cache = RetrainCache(config, bars, trials=n_trials, jobs=jobs, share=share,
                         cache_dir=cache_dir or (
                             Path(config.data_dir).expanduser() / "backtests" / "cache"))
    retunes = RetuneCache(config, cache.bars, jobs=jobs, cache_dir=cache.store.directory,
                          store=cache.store) if any(
        p.risk_retune == "with_retrain" for p in policies) else None
    try:
        fs = cache.plugins().component("feature_set", config.pipeline.feature_set)
        data = {s: prepare_symbol(s, df, fs, warmup,
                                  periods_per_year(df["ts"].to_numpy()), trade_from_ns)
                for s, df in bars.items()}

        async def first_model(s: str) -> Outcome:
            recorded = actual[s].at_start if actual and s in actual else None
            if recorded is not None:  # the live champion when the period starts
                return Outcome(key=f"recorded/{recorded.release_id}", passed=True,
                               reasons=["recorded champion at the start of the period"],
                               metrics=dict(recorded.metrics), release=recorded)
            return await cache.outcome(s, int(data[s].ts[data[s].start - 1]), None)

        firsts = await asyncio.gather(*(first_model(s) for s in data))
        first = dict(zip(data, firsts, strict=True))
        specs = list(policies)
        jobs_list = [(spec, s) for spec in specs for s in data]
        done = list(await asyncio.gather(*(
            simulate(spec, data[s], config, cache, first[s], train_delay_s, progress, retunes)
            for spec, s in jobs_list)))
        if actual is not None:
            real = PolicySpec(name="actual", policy=preset("never", config.policy).policy)
            specs.insert(0, real)
            for s in data:
                a = actual.get(s, Actual())
                jobs_list.append((real, s))
                done.append(replay_actual(real, data[s], config, cache, a.at_start, a.swaps,
                                          a.markers))

    finally:
        cache.close()
        if retunes is not None:
            retunes.close()
    results = []
    decisions: dict[str, Any] = {}
    for spec in specs:
        paths: dict[str, SymbolPath] = {}
        counters: dict[str, dict[str, Any]] = {}
        for (sp, s), (path, c) in zip(jobs_list, done, strict=True):
            if sp is spec:
                paths[s], counters[s] = path, c
                decisions[f"{spec.name}/{s}"] = c["decisions"]
        results.append(fill_metrics(assemble(spec, paths, counters)))
    baselines = ("actual", "never", "nightly") if actual is not None else ("never", "nightly")
    comparison = compare_policies(results, baselines=baselines, seed=config.pipeline.seed) \
        if len(results) > 1 else None
    all_ts = np.concatenate([d.ts for d in data.values()])
    run_digest = _digest(config, bars, specs, n_trials, train_delay_s, warmup, results,
                         decisions)
    return BacktestResult(
        run_digest=run_digest, source=source, symbols=list(data), start_ns=int(all_ts.min()),
        end_ns=int(all_ts.max()), warmup=warmup, seed=config.pipeline.seed, trials=n_trials,
        train_delay="auto" if train_delay_s is None else f"{train_delay_s:g}s",
        policies=results, comparison=comparison, cache_hits=cache.hits,
        cache_misses=cache.misses, stages_computed=dict(cache.computed),
        stages_cpu_s=dict(cache.computed_cpu_s), wall_s=time.perf_counter() - t0,
        risk_cache_hits=retunes.hits if retunes else 0,
        risk_cache_misses=retunes.misses if retunes else 0)


def _digest(config: Config, bars: dict[str, pl.DataFrame], policies: Sequence[PolicySpec],
            trials: int, delay: float | None, warmup: float, results: list[Any],
            decisions: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(digest(msgspec.to_builtins(config.pipeline), [p.settings() for p in policies],
                    trials, delay, warmup).encode())
    for sym in sorted(bars):
        h.update(sym.encode())
        h.update(bars[sym].hash_rows().to_numpy().tobytes())
    h.update(digest(decisions).encode())
    for r in results:
        for sym in sorted(r.paths):
            p = r.paths[sym]
            h.update(np.asarray(p.positions, dtype="<f8").tobytes())
            h.update(np.asarray([x if math.isfinite(x) else 0.0 for x in p.returns],
                                dtype="<f8").tobytes())
            h.update("\n".join(p.release_ids).encode())
    return h.hexdigest()[:32]


__all__ = ["parse_warmup", "run_backtest"]
