"""Do autoopt's decisions hold up on cases no one tuned for? One table (issue 16):

* **gate on random walks** (`autoopt.synthetic.planted_bars`, persistence 0.5: no edge), daily
  and hourly, ``--rw-seeds`` seeds each: the share deployed (goal <= 5%);
* **gate on a planted edge** of documented strength (persistence 0.65: a bar's return keeps the
  previous bar's sign with probability 0.65), daily and hourly, ``--edge-seeds`` seeds each: the
  share deployed (goal >= 90%);
* **drift on a stationary AR(1) feature** (φ = 0.9): the share of live windows (2,000 rows
  against a 5,000-row reference) on which the drift policy fires (goal <= 5%), and on the same
  windows shifted by half the feature's standard deviation, the share detected (goal >= 90%);
* **degradation trigger**: per-trade returns N(μ, σ) with the release's expected μ = 0.2σ,
  reported as the engine client does (rolling 100 trades, a report every 10); the share of
  1,000-trade runs with a false retrain, and on runs whose edge flips to −0.2σ at trade 300,
  the share detected and the median delay in trades.

Every gate row runs the real gate code (`fit_candidate` + `judge`: features, labels, feature
selection, Optuna + LightGBM, purged walk-forward CV, the untouched holdout, PBO, the ledger,
the Deflated Sharpe test) with the default configuration but ``--trials`` trials; drift and
degradation rows go through the pure decision core (`autoopt.core.decide`), as the service does.

    python scripts/eval_decisions.py                      # the table (about 10-15 min, 2 cores)
    python scripts/eval_decisions.py --seed-offset 1000   # other seeds: someone else's data
    python scripts/eval_decisions.py --grid 7d            # calendar-grid validation (gate rows)

``--grid``: the gate rows validate on a calendar grid (``[pipeline.validation] grid``): the
evidence sees the bars before the last grid boundary, test blocks and holdout are whole grid
blocks, the release would be fit on every bar (`autoopt.pipeline.evidence.evidence_bars`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

EDGE = 0.65
RW_BARS = 2_000


def _gate(job: tuple[str, int, float, int | None, int, str]
          ) -> tuple[str, int, float, bool, str]:
    """One retrain's verdict: (freq, seed, persistence, deployed, failing rules)."""
    import logging

    import msgspec

    from autoopt.config import Config, PipelineConfig, ValidationSettings
    from autoopt.errors import DataError
    from autoopt.pipeline.candidate import fit_candidate, judge
    from autoopt.pipeline.dataset import build_dataset, validation_policy
    from autoopt.pipeline.evidence import evidence_bars
    from autoopt.runtime import open_plugins
    from autoopt.synthetic import planted_bars

    logging.disable(logging.WARNING)
    freq, seed, persistence, n, trials, grid = job
    cfg = msgspec.structs.replace(Config(data_dir=""), pipeline=PipelineConfig(
        trials=trials, seed=seed, threads=1, validation=ValidationSettings(grid=grid)))
    plugins = open_plugins(cfg)
    fs = plugins.component("feature_set", "default")
    bars = planted_bars(seed, freq, persistence, n=n)  # type: ignore[arg-type]
    ds = build_dataset(f"S{seed}", bars, fs, cfg.pipeline.label, validation_policy({}))
    ev = evidence_bars(cfg, bars)  # with a grid: the bars before its last boundary
    evidence = ds if ev is None else build_dataset(f"S{seed}", ev, fs, cfg.pipeline.label,
                                                   validation_policy({}))
    try:
        cand = fit_candidate(cfg, evidence, plugins.trainer("lgbm"),
                             plugins.component("validator", "purged_cv"), n_trials=trials,
                             study_of=lambda feats: f"eval-{seed}", model="lgbm", final=ds)
    except DataError as exc:  # e.g. too few grid blocks for the folds: nothing is deployed
        return freq, seed, persistence, False, f"failed: {exc}"
    verdict, _ = judge(cfg, cand, None)
    return freq, seed, persistence, verdict.passed, ",".join(r.code for r in verdict.failures)


def _ar1(rng: np.random.Generator, n: int, phi: float = 0.9) -> np.ndarray:
    e = rng.normal(size=n + 500)
    x = np.empty_like(e)
    x[0] = e[0]
    for t in range(1, e.size):
        x[t] = phi * x[t - 1] + e[t]
    return x[500:]


class _Core:
    """Events built as producers build them, decided by the pure core at increasing times."""

    def __init__(self, config: Any) -> None:
        from autoopt.core import State

        self.config, self.state, self.n = config, State(), 0

    def send(self, cls: Any, **fields: Any) -> list[Any]:
        from autoopt.core import decide
        from autoopt.events import FeatureBatch

        self.n += 1
        now = 1_704_067_200 * 10**9 + self.n * 10**15
        if cls is FeatureBatch:
            cols = fields.pop("columns")
            rows = len(next(iter(cols.values())))
            ev = FeatureBatch.from_arrays(symbol="X", feature_set="default",
                                          ts=now - np.arange(rows, 0, -1), columns=cols,
                                          event_id=f"e{self.n}", ts_event=now, ts_init=now,
                                          **fields)
        else:
            ev = cls.new(event_id=f"e{self.n}", ts_event=now, ts_init=now, **fields)
        self.state, out = decide(self.state, ev, now, self.config)
        return out

    def release(self, **metrics: float) -> None:
        from autoopt.events import ModelPromoted, ModelReleased

        self.send(ModelReleased, symbol="X", release_id="rel-1", model_type="lgbm",
                  sha256="0" * 64, uri="file:///m/X/rel-1", metrics=metrics)
        self.send(ModelPromoted, symbol="X", release_id="rel-1")


def drift_rates(seeds: range, windows: int = 4) -> tuple[float, float, int]:
    """(false-alarm share on stationary AR(1) windows, detected share when shifted, windows)."""
    from autoopt.config import DriftPolicy, PolicyConfig
    from autoopt.events import FeatureBatch

    cfg = PolicyConfig(schedule=None, cooldown_s=0.0, drift=DriftPolicy(
        min_rows=2_000, reference_max_rows=5_000, detectors=["psi", "ks"]))
    fired = detected = total = 0
    for seed in seeds:
        x = _ar1(np.random.default_rng(seed), 5_000 + windows * 2_000)
        sd = float(x[:5_000].std())
        for shift, counter in ((0.0, "fa"), (0.5, "det")):
            core = _Core(cfg)
            core.release()
            core.send(FeatureBatch, columns={"z": x[:5_000]}, release_id="rel-1")
            for w in range(windows):
                win = x[5_000 + w * 2_000: 5_000 + (w + 1) * 2_000] + shift * sd
                out = core.send(FeatureBatch, columns={"z": win})
                hit = any(c.reason.startswith(("drift.", "suppressed")) for c in out)
                if counter == "fa":
                    fired += hit
                    total += 1
                else:
                    detected += hit
    return fired / total, detected / total, total


def degradation_rates(seeds: range) -> tuple[float, float, float, int]:
    """(false-alarm share of runs, detected share, median delay in trades, runs)."""
    from autoopt.config import DegradationPolicy, PolicyConfig
    from autoopt.events import MetricsReported
    from autoopt.validation.live import expected_live

    sigma, mu = 0.01, 0.002
    cfg = PolicyConfig(schedule=None, cooldown_s=0.0, degradation=DegradationPolicy(cbpe=False))
    # the release's expectation, computed as the pipeline does (one bar per trade here)
    rng0 = np.random.default_rng(10**6)
    expected = expected_live(rng0.normal(mu, sigma, 5_000), 5_000)
    false_runs = detected = 0
    delays: list[int] = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for drop in (False, True):
            core = _Core(cfg)
            core.release(**expected)
            r = rng.normal(mu, sigma, 1_000)
            if drop:
                r[300:] -= 2 * mu  # the edge flips: +0.2 sigma -> -0.2 sigma per trade
            for end in range(10, 1_001, 10):
                window = r[max(0, end - 100):end]
                out = core.send(MetricsReported, symbol="X", window="rolling", metrics={
                    "mean_return": float(window.mean()), "n_trades": float(window.size)})
                if any(c.kind == "retrain" for c in out):
                    if not drop or end <= 300:
                        false_runs += 1
                    else:
                        detected += 1
                        delays.append(end - 300)
                    break
    n = len(seeds)
    return false_runs / (2 * n), detected / n, float(statistics.median(delays or [0])), n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rw-seeds", type=int, default=20)
    ap.add_argument("--edge-seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--seed-offset", type=int, default=0)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--grid", default="",
                    help="[pipeline.validation] grid for the gate rows (e.g. 7d; default off)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    o = args.seed_offset
    jobs = [(f, 100 + o + s, 0.5, RW_BARS, args.trials, args.grid) for f in ("daily", "hourly")
            for s in range(args.rw_seeds)]
    jobs += [(f, o + s, EDGE, None, args.trials, args.grid) for f in ("daily", "hourly")
             for s in range(args.edge_seeds)]
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(_gate, jobs))
    t_gate = time.perf_counter() - t0
    fa, det, n_windows = drift_rates(range(o, o + 100))
    dfa, ddet, delay, n_runs = degradation_rates(range(o, o + 100))
    rows = []
    for freq in ("daily", "hourly"):
        for p, goal in ((0.5, "<= 5%"), (EDGE, ">= 90%")):
            sel = [r for r in results if r[0] == freq and r[2] == p]
            share = sum(r[3] for r in sel) / len(sel)
            ok = share <= 0.05 if p == 0.5 else share >= 0.90
            what = "random walk" if p == 0.5 else f"planted edge p={p}"
            rows.append((f"gate: {what}, {freq}", f"{len(sel)} seeds", f"deployed {share:.0%}",
                         goal, ok))
    rows.append(("drift: stationary AR(1) phi=0.9", f"{n_windows} windows",
                 f"false alarms {fa:.1%}", "<= 5%", fa <= 0.05))
    rows.append(("drift: half-sigma shift of it", f"{n_windows} windows",
                 f"detected {det:.0%}", ">= 90%", det >= 0.90))
    rows.append(("degradation: no drop", f"{2 * n_runs} runs", f"false alarms {dfa:.1%}",
                 "<= 5%", dfa <= 0.05))
    rows.append(("degradation: edge +0.2 -> -0.2 sigma", f"{n_runs} runs",
                 f"detected {ddet:.0%}, median delay {delay:.0f} trades", ">= 90%",
                 ddet >= 0.90))
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    print(f"{'case':<{widths[0]}}  {'sample':<{widths[1]}}  {'result':<{widths[2]}}  "
          f"{'goal':<{widths[3]}}  ok")
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  "
              f"{r[3]:<{widths[3]}}  {'yes' if r[4] else 'NO'}")
    refused = [r for r in results if r[2] == EDGE and not r[3]]
    for r in refused:
        print(f"  edge refused: {r[0]} seed {r[1]}: {r[4]}")
    wrong = [r for r in results if r[2] == 0.5 and r[3]]
    for r in wrong:
        print(f"  random walk deployed: {r[0]} seed {r[1]}")
    print(f"trials {args.trials}, seed offset {o}, grid {args.grid or 'off'}, workers "
          f"{args.workers}; gate rows "
          f"{t_gate:.0f} s, total {time.perf_counter() - t0:.0f} s")
    return 0 if all(r[4] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
