"""TFT vs LightGBM: fit time per 10,000 bars at the default config, and out-of-sample scores.

Two datasets, each turned into the seed features (returns 1/5, SMA 20/50 and EMA 12/26 ratios,
rolling volatility, volume z-score; row t uses bars up to t only), a direction label over
``HORIZON`` bars, and the pipeline's purged walk-forward folds (5 test blocks of 10 %, embargo
1 %, at least 30 % training rows):

* ``synthetic``: 10,000 seeded 1-minute bars whose returns lean on the last five (a real signal);
* ``eurusd``: the 5,000 real hourly EURUSD bars bundled with the ``backtesting`` package.

Measured, CPU only, with the task's thread count:

* fit time of one model at the trainer's default parameters on 10,000 bars (TFT and its peer
  LightGBM side by side in one benchmark group);
* tune (same trial budget for both, Optuna TPE, median pruning) then validate: each model's
  tuned recipe re-fitted on every fold's training rows and scored on its test rows after costs,
  the same folds for both — what the pipeline's validator and gate see.

pytest-benchmark::

    python -m pytest benches/bench_tft.py --benchmark-only --benchmark-columns=min,mean

or a script that prints the comparison table::

    python benches/bench_tft.py [--trials 8] [--threads 1] [--datasets synthetic,eurusd]
"""

from __future__ import annotations

import os

# This machine is shared: with OpenMP's default active waiting, threads spin against other
# processes and a fit gets many times slower; passive waiting keeps timings honest.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from autoopt.builtins.lgbm import LightGBMTrainer  # noqa: E402
from autoopt.plugins.interfaces import (  # noqa: E402
    Costs,
    Trainer,
    TrainTask,
    lookback_of,
    predict_rows,
)
from autoopt.search import as_trainer  # noqa: E402
from autoopt.tft.trainer import TFTTrainer  # noqa: E402
from autoopt.validation.cv import PurgedWalkForward  # noqa: E402
from autoopt.validation.metrics import (  # noqa: E402
    classification_metrics,
    positions_from_proba,
    strategy_metrics,
)

HORIZON = 5
WARMUP = 60
FIT_BARS = 10_000
TRIALS = int(os.environ.get("AUTOOPT_BENCH_TFT_TRIALS", "8"))
THREADS = int(os.environ.get("AUTOOPT_BENCH_TFT_THREADS", "1"))


# ------------------------------------------------------------------------------- data


def synthetic_bars(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(close, volume) of 1-minute bars with momentum: r_t = 0.08 * sum(r_{t-5..t-1}) + noise."""
    rng = np.random.default_rng(seed)
    sigma = 4e-4 * np.exp(0.3 * np.sin(np.arange(n) / 1440.0 * 2 * np.pi))
    eps = rng.standard_normal(n) * sigma
    r = np.empty(n)
    r[:5] = eps[:5]
    window = r[:5].sum()
    for t in range(5, n):
        r[t] = 0.08 * window + eps[t]
        window += r[t] - r[t - 5]
    return 100.0 * np.exp(np.cumsum(r)), rng.lognormal(3.0, 0.5, n)


def eurusd_bars() -> tuple[np.ndarray, np.ndarray]:
    from backtesting.test import EURUSD

    return EURUSD["Close"].to_numpy(np.float64), EURUSD["Volume"].to_numpy(np.float64)


def _sma(x: np.ndarray, n: int) -> np.ndarray:
    c = np.cumsum(np.r_[0.0, x])
    out = np.full(x.size, np.nan)
    out[n - 1 :] = (c[n:] - c[:-n]) / n
    return out


def _ema(x: np.ndarray, n: int) -> np.ndarray:
    a = 2.0 / (n + 1)
    out = np.empty_like(x)
    out[0] = x[0]
    for t in range(1, x.size):
        out[t] = a * x[t] + (1 - a) * out[t - 1]
    return out


def _rolling_std(x: np.ndarray, n: int) -> np.ndarray:
    m = _sma(x, n)
    m2 = _sma(x * x, n)
    return np.sqrt(np.maximum(m2 - m * m, 0.0))


def make_task(close: np.ndarray, volume: np.ndarray, symbol: str, periods_per_year: float,
              n_trials: int = TRIALS, threads: int = THREADS) -> TrainTask:
    """Seed features, direction labels over HORIZON bars, the pipeline's purged folds."""
    ret1 = np.r_[np.nan, np.diff(np.log(close))]
    ret5 = np.r_[np.full(5, np.nan), np.log(close[5:] / close[:-5])]
    vz = (volume - _sma(volume, 20)) / np.where(_rolling_std(volume, 20) > 0,
                                                  _rolling_std(volume, 20), 1.0)
    X = np.column_stack([
        ret1, ret5, close / _sma(close, 20) - 1, close / _sma(close, 50) - 1,
        _ema(close, 12) / _ema(close, 26) - 1, _rolling_std(np.nan_to_num(ret1), 20), vz,
    ])
    names = ("ret_1", "ret_5", "sma_20", "sma_50", "ema_12_26", "vol_20", "volume_z")
    fwd_full = np.r_[close[1:] / close[:-1] - 1, 0.0]
    up = np.r_[close[HORIZON:] > close[:-HORIZON], np.zeros(HORIZON, bool)]
    keep = slice(WARMUP, close.size - HORIZON)  # complete features and known labels only
    X, y, fwd = X[keep], up[keep].astype(np.int8), fwd_full[keep]
    n = X.shape[0]
    cv = PurgedWalkForward(n_splits=5, test_size=0.1, embargo=0.01,
                           min_train_size=int(0.3 * n))
    folds = tuple(cv.split(n, np.minimum(np.arange(n) + HORIZON, n - 1)))
    return TrainTask(symbol=symbol, X=X, y=y, feature_names=names, folds=folds,
                     forward_returns=fwd, periods_per_year=periods_per_year,
                     costs=Costs(fee_bps=0.0, slippage_bps=0.0), n_trials=n_trials, seed=42,
                     threads=threads, pruning=True, pruner="median")


def dataset(name: str, **kw: Any) -> TrainTask:
    if name == "synthetic":
        close, volume = synthetic_bars(1000, FIT_BARS + WARMUP + HORIZON)
        return make_task(close, volume, "SYN", 525_600.0, **kw)
    if name == "eurusd":
        close, volume = eurusd_bars()
        return make_task(close, volume, "EURUSD", 252 * 24.0, **kw)
    raise SystemExit(f"unknown dataset {name!r}; known: synthetic, eurusd")


# ------------------------------------------------------------------------------- measures


def trainers() -> dict[str, Trainer]:
    """Both SDK trainers as the pipeline sees them: the core's search runs their trials."""
    return {"tft": as_trainer(TFTTrainer(device="cpu")), "lgbm": as_trainer(LightGBMTrainer())}


def fit_default(trainer: Trainer, task: TrainTask) -> float:
    """Seconds to fit one model at the trainer's default parameters on all of ``task``."""
    params = trainer.default_params(task.X.shape[0])
    t0 = time.perf_counter()
    trainer.fit(task.X, task.y, params, task.feature_names, seed=task.seed,
                threads=task.threads)
    return time.perf_counter() - t0


def tune_and_validate(trainer: Trainer, task: TrainTask) -> dict[str, float]:
    """Tune on the task's folds, then score the tuned recipe out of sample on the same folds."""
    trainer = as_trainer(trainer)  # an SDK trainer (e.g. a bare TFTTrainer): the core's search
    t0 = time.perf_counter()
    tuned = trainer.tune(task)
    tune_s = time.perf_counter() - t0
    probas, metrics = [], []
    for train, test in task.folds:
        model = trainer.fit(task.X[train], task.y[train], tuned.params, task.feature_names,
                            seed=task.seed, threads=task.threads)
        proba = predict_rows(model.predict_proba, lookback_of(model), task.X, test)
        probas.append(proba)
        cm = classification_metrics(task.y[test], proba)
        sm = strategy_metrics(positions_from_proba(proba), task.forward_returns[test],
                              task.periods_per_year, task.costs.fee_bps, task.costs.slippage_bps)
        metrics.append({"log_loss": cm.log_loss, "auc": cm.auc, "accuracy": cm.accuracy,
                        "sharpe": sm.metrics.sharpe, "n_trades": sm.metrics.n_trades})
    states = [t.state for t in tuned.trials]
    return {
        "tune_s": tune_s,
        "validate_s": time.perf_counter() - t0 - tune_s,
        "trials": float(len(states)),
        "pruned": float(states.count("PRUNED")),
        "cv_log_loss": tuned.best_value,
        **{k: float(np.mean([m[k] for m in metrics])) for k in ("log_loss", "auc", "accuracy",
                                                                  "sharpe")},
        "n_trades": float(sum(m["n_trades"] for m in metrics)),
    }


# ------------------------------------------------------------------------------- pytest-benchmark


@pytest.fixture(scope="module")
def synthetic_task() -> TrainTask:
    return dataset("synthetic")


@pytest.mark.parametrize("model", ["tft", "lgbm"])
def test_fit_10k_bars_default_config(benchmark: Any, synthetic_task: TrainTask,
                                     model: str) -> None:
    benchmark.group = "fit 10k bars, default params, CPU"
    trainer = trainers()[model]
    params = trainer.default_params(synthetic_task.X.shape[0])
    task = synthetic_task
    benchmark.extra_info["rows"] = int(task.X.shape[0])
    benchmark.extra_info["threads"] = task.threads
    benchmark.pedantic(trainer.fit, args=(task.X, task.y, params, task.feature_names),
                       kwargs={"seed": task.seed, "threads": task.threads}, rounds=2,
                       iterations=1)


@pytest.mark.parametrize("data", ["synthetic", "eurusd"])
@pytest.mark.parametrize("model", ["tft", "lgbm"])
def test_tune_and_validate_on_the_same_folds(benchmark: Any, model: str, data: str) -> None:
    benchmark.group = f"tune {TRIALS} trials + validate, {data}"
    task = dataset(data)
    result: dict[str, float] = {}

    def run() -> None:
        result.update(tune_and_validate(trainers()[model], task))

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    assert result["trials"] == TRIALS


# ------------------------------------------------------------------------------- script


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=TRIALS)
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--datasets", default="synthetic,eurusd")
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    report: dict[str, Any] = {"threads": args.threads, "trials": args.trials}
    fit_task = dataset("synthetic", n_trials=args.trials, threads=args.threads)
    report["fit_10k_s"] = {m: fit_default(t, fit_task) for m, t in trainers().items()}
    print(f"fit at default params, {fit_task.X.shape[0]} bars, {args.threads} thread(s): "
          + ", ".join(f"{m} {s:.2f} s" for m, s in report["fit_10k_s"].items()), flush=True)
    for name in args.datasets.split(","):
        task = dataset(name, n_trials=args.trials, threads=args.threads)
        rows: dict[str, dict[str, float]] = {}
        for model, trainer in trainers().items():
            rows[model] = tune_and_validate(trainer, task)
            print(f"{name:>9} {model:>4}: " + _fmt(rows[model]), flush=True)
        report[name] = rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


def _fmt(row: dict[str, float]) -> str:
    keys: dict[str, Callable[[float], str]] = {
        "tune_s": "{:.1f}s".format, "validate_s": "{:.1f}s".format, "trials": "{:.0f}".format,
        "pruned": "{:.0f}".format, "cv_log_loss": "{:.4f}".format, "log_loss": "{:.4f}".format,
        "auc": "{:.4f}".format, "accuracy": "{:.4f}".format, "sharpe": "{:.2f}".format,
        "n_trades": "{:.0f}".format,
    }
    return "  ".join(f"{k}={f(row[k])}" for k, f in keys.items())


if __name__ == "__main__":
    main()
