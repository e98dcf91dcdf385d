"""Does the default pipeline release a strong planted edge and refuse a random walk?

For each seed: `autoopt.synthetic.planted_bars`, whose one-bar log return keeps the sign of the
previous bar's with probability ``--persistence`` (0.5 = a random walk, no edge), daily (3,000
bars, weekdays) or hourly (4,000 bars), written to a CSV and run through the real `run_retrain`
(features, labels, Optuna + LightGBM, purged CV, the gate) with the default configuration but
``--trials`` and ``--pruner``, on an embedded nats-server. Prints one line per seed (deployed,
DSR, trials started/completed/pruned, the luck benchmark) and the deploy rate.

    python scripts/eval_gate_planted_edge.py --freq daily --seeds 0-3
    python scripts/eval_gate_planted_edge.py --freq hourly --persistence 0.5 --seeds 0-19
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import polars as pl

from autoopt.synthetic import STRONG_PERSISTENCE, planted_bars


async def _one(seed: int, args: argparse.Namespace, root: Path) -> dict:
    from autoopt.config import Config, PipelineConfig
    from autoopt.log import EmbeddedServer, EventLog, NatsSettings
    from autoopt.pipeline import run_retrain

    work = root / f"seed{seed}"
    work.mkdir()
    path = work / f"EDGE{seed}.csv"
    df = planted_bars(seed, args.freq, args.persistence)
    df.with_columns(pl.from_epoch("ts", time_unit="ns").alias("ts")).write_csv(path)
    server = EmbeddedServer(work / "nats")
    url = server.start()
    try:
        log = await EventLog.connect(NatsSettings(urls=[url]))
        try:
            base = Config(data_dir=str(work / "data"))
            pipe = PipelineConfig(trials=args.trials, pruning=args.pruner != "none", seed=seed,
                                  **({"pruner": args.pruner} if args.pruner != "none" else {}))
            cfg = msgspec.structs.replace(base, pipeline=pipe)
            summary = await run_retrain(cfg, source=f"file:{path}", event_log=log)
        finally:
            await log.close()
    finally:
        server.close()
    res = summary.results[0]
    return {"seed": seed, "deployed": bool(res.deployed), "reasons": list(res.reasons),
            "metrics": dict(getattr(res, "metrics", {}) or {})}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--freq", choices=["daily", "hourly"], default="daily")
    ap.add_argument("--persistence", type=float, default=STRONG_PERSISTENCE)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--pruner", default="successive_halving",
                    choices=["successive_halving", "median", "hyperband", "none"])
    ap.add_argument("--seeds", default="0-3")
    args = ap.parse_args()
    lo, _, hi = args.seeds.partition("-")
    seeds = range(int(lo), int(hi or lo) + 1)
    deployed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            t0 = time.perf_counter()
            out = asyncio.run(_one(seed, args, Path(tmp)))
            deployed += out["deployed"]
            dsr = [r for r in out["reasons"] if r.startswith(("dsr", "too_few"))]
            print(f"seed {seed}: deployed={out['deployed']} {time.perf_counter() - t0:.0f}s "
                  f"{dsr[0] if dsr else out['reasons']}", flush=True)
    print(f"deployed {deployed}/{len(seeds)} ({args.freq}, persistence {args.persistence}, "
          f"{args.trials} trials, pruner {args.pruner})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
