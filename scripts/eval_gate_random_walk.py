"""How often does the release gate refuse a model trained on a pure random walk? (It should: ~always.)

For each seed: a geometric random walk (no drift, no edge), lagged-return features, next-bar
direction labels, and a small LightGBM hyperparameter search, each trial scored by purged
walk-forward CV with strategy metrics after fees and slippage. The best trial (by mean fold
Sharpe) goes to the gate with N = number of trials (the luck benchmark's variance is the
Sharpe estimator's null variance on the best trial's out-of-sample path). Prints one line
per seed and the refusal rate; exits 1 if the rate is below --min-refusal (0.95).

    python scripts/eval_gate_random_walk.py                      # 20 seeds, 1+1 bps costs
    python scripts/eval_gate_random_walk.py --fee-bps 0 --slippage-bps 0   # the DSR on its own
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from collections import Counter
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl

from autoopt.labels import drop_unlabeled, fixed_horizon_labels
from autoopt.validation.cv import PurgedWalkForward
from autoopt.validation.dsr import probabilistic_sharpe_ratio, sharpe_moments
from autoopt.validation.gate import GateConfig, GateVerdict, evaluate_gate
from autoopt.validation.metrics import StrategyMetrics, positions_from_proba, strategy_metrics

PERIODS_PER_YEAR = 24 * 365  # hourly bars, traded around the clock
LAGS = 5
VOL_WINDOW = 10
# LightGBM hyperparameters plus the no-trade band around P(up) = 0.5 that turns P into positions
SEARCH_SPACE: dict[str, list[Any]] = {
    "num_leaves": [4, 8, 16, 31],
    "learning_rate": [0.03, 0.1],
    "band": [0.0, 0.02],
}


def random_walk(seed: int, n_bars: int, sigma: float = 0.006) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, sigma, n_bars)))


def features(close: np.ndarray) -> np.ndarray:
    """Row t: the last LAGS one-bar log returns and their rolling std, all known at t's close."""
    r = np.concatenate(([0.0], np.diff(np.log(close))))
    cols = [np.concatenate((np.zeros(j), r[: r.size - j])) for j in range(LAGS)]
    vol = np.zeros_like(r)
    win = np.lib.stride_tricks.sliding_window_view(r, VOL_WINDOW).std(axis=1)
    vol[VOL_WINDOW - 1 :] = win
    return np.column_stack((*cols, vol))


def run_trial(
    params: dict[str, Any], x: np.ndarray, y: np.ndarray, fwd: np.ndarray, t1: np.ndarray,
    cv: PurgedWalkForward, fee_bps: float, slippage_bps: float, seed: int,
) -> tuple[list[StrategyMetrics], np.ndarray]:
    fold_metrics, oos = [], []
    model_params = {k: v for k, v in params.items() if k != "band"}
    lgb_params = {
        "objective": "binary", "verbose": -1, "num_threads": 1, "deterministic": True,
        "seed": seed, "min_data_in_leaf": 50, "feature_fraction": 0.8, **model_params,
    }
    for train, test in cv.split(y.size, t1):
        booster = lgb.train(lgb_params, lgb.Dataset(x[train], y[train]), num_boost_round=60)
        pos = positions_from_proba(booster.predict(x[test]), band=params["band"])
        res = strategy_metrics(pos, fwd[test], PERIODS_PER_YEAR, fee_bps, slippage_bps)
        fold_metrics.append(res.metrics)
        oos.append(res.returns)
    return fold_metrics, np.concatenate(oos)


def evaluate_seed(
    seed: int, n_bars: int, fee_bps: float, slippage_bps: float
) -> tuple[GateVerdict, bool, dict[str, Any]]:
    close = random_walk(seed, n_bars)
    x_all = features(close)
    frame = fixed_horizon_labels(close, horizon=1).with_columns(
        pl.Series("fwd", np.concatenate((close[1:] / close[:-1] - 1.0, [np.nan]))),
        pl.Series("row", np.arange(close.size)),
        # rows before VOL_WINDOW have padded features: null them so they are dropped too
        pl.Series("warm", np.arange(close.size) >= VOL_WINDOW).replace(False, None),
    )
    frame = drop_unlabeled(frame, ("label", "warm"))  # also re-bases t1 to the kept rows
    x = x_all[frame["row"].to_numpy()]
    y = (frame["label"].to_numpy() > 0).astype(np.float64)
    fwd = frame["fwd"].to_numpy()
    t1 = frame["t1"].to_numpy()
    cv = PurgedWalkForward(n_splits=4, test_size=0.15, embargo=5, min_train_size=500)
    trials = []
    for values in itertools.product(*SEARCH_SPACE.values()):
        params = dict(zip(SEARCH_SPACE, values, strict=True))
        folds, oos = run_trial(params, x, y, fwd, t1, cv, fee_bps, slippage_bps, seed)
        trials.append((float(np.mean([f.sharpe for f in folds])), params, folds, oos))
    score, params, folds, oos = max(trials, key=lambda t: t[0])
    verdict = evaluate_gate(folds, None, oos, len(trials), config=GateConfig(min_trades=10))
    sr, n, skew, kurt = sharpe_moments(oos)
    naive_pass = probabilistic_sharpe_ratio(sr, 0.0, n, skew, kurt) >= 0.95
    info = {"seed": seed, "best_params": params, "best_mean_fold_sharpe": score}
    return verdict, naive_pass, info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--bars", type=int, default=3000)
    ap.add_argument("--fee-bps", type=float, default=1.0)
    ap.add_argument("--slippage-bps", type=float, default=1.0)
    ap.add_argument("--min-refusal", type=float, default=0.95)
    ap.add_argument("--json", default=None, help="write the summary here")
    args = ap.parse_args(argv)

    started = time.perf_counter()
    refused, naive, codes = 0, 0, Counter[str]()
    rows = []
    for seed in range(args.seeds):
        verdict, naive_pass, info = evaluate_seed(seed, args.bars, args.fee_bps, args.slippage_bps)
        refused += not verdict.passed
        naive += naive_pass
        codes.update(r.code for r in verdict.failures)
        st = verdict.stats
        print(f"seed {seed:3d}  {'REFUSED' if not verdict.passed else 'PASSED '}  "
              f"best mean-fold Sharpe {info['best_mean_fold_sharpe']:+7.2f}  "
              f"DSR {st['dsr']:.3f}  PSR(0) {st['psr']:.3f}  trades {int(st['n_trades'])}  "
              f"{','.join(r.code for r in verdict.failures) or '-'}")
        rows.append({**info, "passed": verdict.passed, "codes": verdict.codes,
                     "dsr": st["dsr"], "psr": st["psr"]})
    rate = refused / args.seeds
    elapsed = time.perf_counter() - started
    n_trials = math.prod(len(v) for v in SEARCH_SPACE.values())
    print(f"\nrefusal rate {refused}/{args.seeds} = {rate:.0%}  "
          f"(best-of-{n_trials} would pass an undeflated PSR(0) >= 0.95 test in {naive}/{args.seeds})")
    print(f"failure codes: {dict(codes)}  costs: fee {args.fee_bps} bps + slippage "
          f"{args.slippage_bps} bps  elapsed {elapsed:.1f}s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"refusal_rate": rate, "seeds": args.seeds, "n_trials": n_trials,
                       "naive_passes": naive, "elapsed_s": elapsed, "results": rows}, f, indent=2)
    return 0 if rate >= args.min_refusal else 1


if __name__ == "__main__":
    sys.exit(main())
