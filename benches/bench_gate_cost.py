"""The gate's extra cost: CPCV + PBO + the trial ledger against walk-forward alone, same run.

Workload: `bench_retrain.synthetic_bars` (1-minute bars with a learnable trend), the default
feature set, ``--trials`` Optuna trials with pruning, then the gate: one symbol's select + tune +
validate + judge (`fit_candidate` + `judge`, the code the nightly retrain and the backtest run).
Variant **wf**: ``validation.scheme = "walk_forward"``, PBO and the ledger off. Variant **full**:
``scheme = "cpcv"`` (6 groups, 2 tested: 15 splits, 5 paths), PBO over the trial clusters, and
the ledger's effective N (its clustering; a past ledger of ``--ledger`` entries is included, as a
symbol with a year of nightly runs would have). Both keep the holdout. The variants alternate,
``--rounds`` times each; the minimum wall of each and their ratio are printed.

    python benches/bench_gate_cost.py --days 30 --symbols 1 --trials 32 --rounds 2

Measured (shared 2-core machine, load average 4-9 from other jobs; the full nightly workload,
3 symbols x 1 year, takes about 10 minutes per variant here, so it was scaled down to 30 days
of bars, 32 trials, with a past ledger of 2,920 entries, the variants alternating in one run):

* 1 symbol, 2 rounds: walk-forward 78.2 / 55.7 s, full 83.9 / 52.1 s: within the load noise.
* 3 symbols, 2 rounds, clustering up to 2,048 ledger series: walk-forward 117.7 / 121.6 s,
  full 158.3 / 141.0 s: +19.8 % (min of each), most of it the ledger clustering (about 10 s a
  symbol at that load: a 2,048 x 2,048 correlation and silhouette per cut).
* 3 symbols, 1 round, clustering up to 1,024 series (the default since): walk-forward 109.9 s,
  full 106.0 s (-3.6 %).

So under the 20 % budget: CPCV refits the chosen recipe 15 times (one model each, against 32
trials x 5 folds of tuning), PBO is one vectorised pass over 12,870 halvings (0.5 s for 260k
rows x 8 trials), the ledger clustering about 1-3 s a symbol.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import msgspec  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

from autoopt.config import Config, PipelineConfig  # noqa: E402
from autoopt.pipeline.candidate import fit_candidate, judge  # noqa: E402
from autoopt.pipeline.dataset import build_dataset, validation_policy  # noqa: E402
from autoopt.pipeline.evidence import LedgerRow  # noqa: E402
from autoopt.runtime import open_plugins  # noqa: E402
from bench_retrain import synthetic_bars  # noqa: E402


def _past_ledger(n: int, days: int) -> list[LedgerRow]:
    rng = np.random.default_rng(0)
    base = [rng.normal(0, 1e-3, days) for _ in range(12)]
    return [LedgerRow(key=f"past#{i}", source="trial", model="lgbm",
                      days=list(range(19_700, 19_700 + days)),
                      returns=list(base[i % 12] + rng.normal(0, 3e-4, days)))
            for i in range(n)]


def one(variant: str, ds_list: list, trials: int, past: list[LedgerRow]) -> float:
    full = variant == "full"
    cfg = msgspec.structs.replace(Config(data_dir=""), pipeline=msgspec.convert({
        "trials": trials, "threads": 2, "seed": 42,
        "validation": {"scheme": "cpcv" if full else "walk_forward", "pbo": full,
                       "ledger": full}}, PipelineConfig))
    plugins = open_plugins(cfg)
    t0 = time.perf_counter()
    for ds in ds_list:
        cand = fit_candidate(cfg, ds, plugins.trainer("lgbm"),
                             plugins.component("validator", "purged_cv"), n_trials=trials,
                             study_of=lambda feats: f"bench-{variant}-{time.time_ns()}",
                             model="lgbm")
        judge(cfg, cand, None, past if full else ())
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--symbols", type=int, default=1)
    ap.add_argument("--trials", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--ledger", type=int, default=365 * 8)
    args = ap.parse_args()
    cfg = Config(data_dir="")
    fs = open_plugins(cfg).component("feature_set", "default")
    ds_list = [build_dataset(f"SYN{s}", synthetic_bars(1000 + s, args.days * 1440), fs,
                             cfg.pipeline.label, validation_policy({}))
               for s in range(args.symbols)]
    past = _past_ledger(args.ledger, min(args.days, 365))
    walls: dict[str, list[float]] = {"wf": [], "full": []}
    for r in range(args.rounds):
        for v in ("wf", "full") if r % 2 == 0 else ("full", "wf"):
            walls[v].append(one(v, ds_list, args.trials, past))
            print(f"round {r} {v}: {walls[v][-1]:.1f} s", flush=True)
    wf, full = min(walls["wf"]), min(walls["full"])
    print(f"{args.symbols} symbol(s) x {args.days} days of 1-minute bars, {args.trials} trials, "
          f"ledger of {args.ledger} past entries; min of {args.rounds} rounds: walk-forward "
          f"{wf:.1f} s, CPCV + PBO + ledger {full:.1f} s, extra {full / wf - 1:+.1%}; load "
          f"{os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
