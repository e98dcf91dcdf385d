"""The nightly retrain, end to end, with and without pruning.

Workload (the issue's): 3 symbols x 1 year of 1-minute bars (525,600 bars each) of seeded
synthetic prices with a real, learnable signal (a hidden persistent trend in the
minute returns), 32 Optuna trials per symbol, the default feature set, purged walk-forward CV,
selection, validation, gate and release, on the embedded nats-server; the data dir is fresh for
each run so no study resumes.

Run as pytest-benchmark (the two variants side by side in one group)::

    python -m pytest benches/bench_retrain.py --benchmark-only --benchmark-columns=min,mean

or as a script that prints the comparison (wall time, best score, pruning savings)::

    python benches/bench_retrain.py [--days 365] [--symbols 3] [--trials 32] [--only-pruning]

Size: ``AUTOOPT_BENCH_DAYS`` / ``_SYMBOLS`` / ``_TRIALS`` (or the script's flags) shrink it.

Measured on the shared 2-core dev machine (other jobs running, load average 3-4), successive
halving pruner, 2 LightGBM threads:

* full workload, with pruning: 620 s wall (tuning 498 s, 82 of 96 trials pruned); every
  symbol released (Sharpe after costs 15-36, DSR passed).
* 3 symbols x 60 days x 32 trials: with pruning 160 s, without 495 s (3.1x wall, 3.6x
  tuning); best CV log loss worse by at most 0.025 %.

Issue 20 (the retrain cut; CV folds boosted by worker threads at one LightGBM thread each,
row-wise histograms, selection folds in threads and one predict per fold's shuffled copies; the
same trials, prunings, features, Sharpes and deployments, best CV log loss equal to 4e-15),
3 symbols x 40 days (57,600 bars each: above the 50,000 rows where the old code ran LightGBM on
2 threads) x 32 trials, before and after interleaved twice in one run, load 4-9 on 2 cores:
before 395.8 / 258.3 s wall (151.0 / 142.6 CPU-s), after 319.9 / 187.5 s (129.0 / 123.4
CPU-s): 1.38x wall and 1.16x CPU on the better rounds. At this load the process gets well
under one core, so wall time follows CPU seconds and the parallel gain barely shows.
Full workload after the cut, load 4-7: 1,339.5 s wall, 1,150.7 CPU-s, every symbol released.

Issue 20, second cut (early stopping's patience scaled to the trial's learning rate,
``ceil(1 / learning_rate)`` rounds between 10 and 50 instead of a fixed 50; the pruner's
completed-trial count cached once reached): full workload, before (HEAD a200cdb, a worktree)
then after, one after the other, load 3.4-7: before 1,054.2 s wall / 779.9 CPU-s, after 843.6 s
/ 681.4 CPU-s (1.25x wall, 1.14x CPU); the same best trial, best CV log loss bit-identical and
the same Sharpe (15.05, 41.35, 15.75) for every symbol, all released. CPU by stage after:
boosting 476, feature selection 74, validation 42, trial predictions 21, Optuna 18, final fit
12, holdout 12, features and labels 10. On 2 idle cores that is >= ~340 s: the 4-minute goal
is not met; it is bound by boosting (70 %). 2 symbols x 90 days, interleaved in one process:
99.5 -> 84.9 CPU-s, best CV log loss +0.014 % / +0.008 %, both released.

Issue 20, third cut (quiet AMD EPYC 2-vCPU host, one run each, benches/RESULTS.md): the
challenger validated on its best trial's own fold models (folds binned on their own training
rows), the pruner acting from the first trial with the gate's completed trials held at the end
of the budget, symbols side by side (``pipeline.parallel_symbols``) and the outlier rule
vectorised: full workload 401.1 s wall / 677 CPU-s (45c3875) -> **221.0 s / 432 CPU-s**, best CV
log loss within 0.006 % for every symbol, all released.
"""

from __future__ import annotations

import os

# This machine is shared: with OpenMP's default active waiting, LightGBM's threads spin against
# other processes and a fit can get many times slower; passive waiting keeps timings honest.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import polars as pl  # noqa: E402
import pytest  # noqa: E402

from autoopt.config import Config, load_config  # noqa: E402
from autoopt.pipeline import RetrainSummary, run_retrain  # noqa: E402
from autoopt.runtime import open_event_log  # noqa: E402

MIN_NS = 60_000_000_000
T0 = 1_704_067_200_000_000_000  # 2024-01-01


def synthetic_bars(seed: int, n: int, phi: float = 0.998, drift: float = 0.2) -> pl.DataFrame:
    """1-minute OHLCV with a hidden, persistent trend: r_t = mu_t + noise_t, where mu_t is an
    AR(1) with coefficient `phi` (half-life ~ln 2 / (1 - phi) minutes) and a standard deviation
    of `drift` times the noise's. Trend-following features (moving-average ratios, MACD) can
    learn it; the noise keeps it hard."""
    rng = np.random.default_rng(seed)
    sigma = 4e-4 * np.exp(0.3 * np.sin(np.arange(n) / 1440.0 * 2 * np.pi))  # daily vol cycle
    shocks = rng.standard_normal(n) * drift * np.sqrt(1.0 - phi * phi)
    mu = np.empty(n)
    level = 0.0
    for t in range(n):  # a sequential recursion; ~0.3 s for a year
        level = phi * level + shocks[t]
        mu[t] = level
    r = (mu + rng.standard_normal(n)) * sigma
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = np.r_[100.0, close[:-1]]
    wick = np.abs(rng.standard_normal((2, n))) * sigma * close
    return pl.DataFrame({
        "ts": T0 + np.arange(n, dtype=np.int64) * MIN_NS,
        "open": open_,
        "high": np.maximum(open_, close) + wick[0],
        "low": np.minimum(open_, close) - wick[1],
        "close": close,
        "volume": rng.lognormal(3.0, 0.5, n),
    })


def write_bars(folder: Path, n_symbols: int, days: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(n_symbols):
        synthetic_bars(1000 + s, days * 1440).write_parquet(folder / f"SYN{s}.parquet")
    return f"file:{folder}"


def bench_config(data_dir: Path, *, trials: int, pruning: bool, pruner: str) -> Config:
    return load_config(
        environ={"HOME": str(data_dir)},
        overrides={"data_dir": str(data_dir),
                   "pipeline": {"trials": trials, "pruning": pruning, "pruner": pruner,
                                "threads": 2, "seed": 42}},
    )


async def _nightly(config: Config, source: str) -> RetrainSummary:
    log = await open_event_log(config)
    try:
        return await run_retrain(config, source=source, event_log=log)
    finally:
        await log.close()


def cpu_seconds() -> float:
    """CPU seconds of this process (every thread) and its waited-for children: the work done,
    which unlike the wall time does not grow with the machine's load."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def nightly(work: Path, source: str, *, trials: int, pruning: bool, pruner: str) -> dict[str, Any]:
    """One nightly run in a fresh data dir; wall and CPU time, scores and trial states."""
    data_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    config = bench_config(data_dir, trials=trials, pruning=pruning, pruner=pruner)
    t0, c0 = time.perf_counter(), cpu_seconds()
    summary = asyncio.run(_nightly(config, source))
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - c0
    storage = f"sqlite:///{data_dir / 'optuna.db'}"
    per_symbol = {}
    for r in summary.results:
        if r.error is not None:
            raise RuntimeError(f"{r.symbol}: {r.error}")
        study = optuna.load_study(study_name=r.study, storage=storage)
        states = [t.state.name for t in study.trials]
        per_symbol[r.symbol] = {
            "best_cv_log_loss": r.metrics["cv_log_loss"],
            "sharpe": r.score,
            "deployed": r.deployed,
            "trials": len(states),
            "pruned": states.count("PRUNED"),
            "tuning_s": sum(t.duration.total_seconds() for t in study.trials if t.duration),
            "features": len(r.features),
        }
    return {"wall_s": wall, "cpu_s": cpu, "load_avg_1m": os.getloadavg()[0],
            "symbols": per_symbol}


def compare(with_p: dict[str, Any], without: dict[str, Any]) -> dict[str, Any]:
    """Pruning savings and best-score loss (relative increase of the best CV log loss)."""
    losses = {
        s: (with_p["symbols"][s]["best_cv_log_loss"] - v["best_cv_log_loss"])
        / v["best_cv_log_loss"]
        for s, v in without["symbols"].items()
    }
    tune_with = sum(v["tuning_s"] for v in with_p["symbols"].values())
    tune_without = sum(v["tuning_s"] for v in without["symbols"].values())
    return {
        "wall_speedup": without["wall_s"] / with_p["wall_s"],
        "tuning_speedup": tune_without / tune_with,
        "best_score_loss_pct": {s: 100 * v for s, v in losses.items()},
        "max_best_score_loss_pct": 100 * max(losses.values()),
    }


def _size() -> tuple[int, int, int]:
    env = os.environ
    return (int(env.get("AUTOOPT_BENCH_SYMBOLS", 3)), int(env.get("AUTOOPT_BENCH_DAYS", 365)),
            int(env.get("AUTOOPT_BENCH_TRIALS", 32)))


@pytest.fixture(scope="module")
def bench_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    symbols, days, _ = _size()
    work = tmp_path_factory.mktemp("retrain-bench")
    return work, write_bars(work / "bars", symbols, days)


@pytest.mark.benchmark(group="retrain-nightly", min_rounds=1, warmup=False)
@pytest.mark.parametrize("pruning", [True, False], ids=["pruning", "no-pruning"])
def test_nightly_retrain(benchmark: Any, bench_source: tuple[Path, str], pruning: bool) -> None:
    work, source = bench_source
    _, _, trials = _size()
    out = benchmark.pedantic(
        nightly, args=(work, source), kwargs={"trials": trials, "pruning": pruning,
                                              "pruner": "successive_halving"},
        rounds=1, iterations=1,
    )
    benchmark.extra_info.update(out)
    assert all(v["trials"] == trials for v in out["symbols"].values())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=3)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--pruner", default="successive_halving")
    ap.add_argument("--only-pruning", action="store_true",
                    help="Skip the run without pruning (just the wall-time target).")
    ap.add_argument("--json", type=Path, default=None, help="Also write the report here.")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="autoopt-bench-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        source = write_bars(work / "bars", args.symbols, args.days)
        gen_s = time.perf_counter() - t0
        with_p = nightly(work, source, trials=args.trials, pruning=True, pruner=args.pruner)
        print(json.dumps({"pruning": with_p}, indent=2), flush=True)
        without = None
        if not args.only_pruning:
            without = nightly(work, source, trials=args.trials, pruning=False,
                              pruner=args.pruner)
            print(json.dumps({"no_pruning": without}, indent=2), flush=True)
    report: dict[str, Any] = {
        "workload": {"symbols": args.symbols, "days": args.days, "bars_per_symbol":
                     args.days * 1440, "trials": args.trials, "pruner": args.pruner,
                     "cpu_count": os.cpu_count(), "data_generation_s": gen_s},
        "pruning": with_p, "no_pruning": without,
        "comparison": compare(with_p, without) if without is not None else None,
    }
    print(json.dumps(report["comparison"], indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
