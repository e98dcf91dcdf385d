"""Beyond one machine (issue 18): shared studies by several worker processes, and the registry
through the JetStream Object Store, each beside its one-machine peer in the same run.

* Studies: one study of ``--trials`` (64) trials run by 1, 2 and 4 ``autoopt worker`` processes
  against SQLite, PostgreSQL (a throwaway server, `autoopt.testing.postgres`) and the NATS
  journal (an embedded nats-server). Each trial sleeps ``--trial-ms`` then evaluates a quadratic.
  Reported: wall time from launch to the last worker's exit, the trials that spent budget
  (must be exactly 64), surplus trials (asked, never run), and the storage overhead per trial:
  ``(wall - start-up) * workers / trials - trial time``, start-up being the wall of a worker
  that joins an already full study (interpreter, imports, connect, one ask).
* Registry: a ``--mb`` (50) MB artifact saved (stage + publish) and loaded (read + verify) on
  local disk, and through the Object Store: saved by one registry, loaded by another with an
  empty cache (download + verify) and loaded again (cached: manifest fetch + verify). Min of
  ``--rounds`` (5), each round a new artifact.

Run: ``python benches/bench_scale.py`` (results in benches/RESULTS.md, "Beyond one machine").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _workers(env: dict[str, str], study: str, n: int, trials: int) -> tuple[float, list[str]]:
    t0 = time.perf_counter()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "autoopt", "worker", "--study", study, "--create", "--trials",
         str(trials), "--objective", "autoopt.testing.objectives:slow_quadratic"],
        env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(n)]
    outs = [p.communicate(timeout=1800) for p in procs]
    wall = time.perf_counter() - t0
    for p, (_out, err) in zip(procs, outs, strict=True):
        if p.returncode != 0:
            raise SystemExit(f"worker failed: {err.strip()[-2000:]}")
    return wall, [o for o, _ in outs]


def bench_studies(root: Path, trials: int, workers: list[int], trial_s: float) -> list[dict]:
    import optuna

    from autoopt.log import EmbeddedServer, NatsSettings
    from autoopt.studies import configure_nats, open_storage, spent_trials
    from autoopt.testing.postgres import PostgresServer

    pg = PostgresServer()
    nats = EmbeddedServer(root / "nats")
    rows = []
    try:
        storages = {"sqlite": f"sqlite:///{root / 'optuna.db'}", "postgresql": pg.start(),
                    "nats": "nats"}
        url = nats.start()
        configure_nats(NatsSettings(urls=[url]), root / "data")
        base = {k: v for k, v in os.environ.items() if not k.startswith("AUTOOPT_")}
        for n in workers:  # interleaved: every storage at each worker count in turn
            for kind, storage in storages.items():
                env = {**base, "AUTOOPT_DATA_DIR": str(root / "data"), "AUTOOPT_NATS_URL": url,
                       "AUTOOPT_PIPELINE__OPTUNA_STORAGE": storage,
                       "OBJECTIVE_TRIAL_S": str(trial_s)}
                study = f"bench-{kind}-{n}"
                wall, _ = _workers(env, study, n, trials)
                startup, _ = _workers(env, study, 1, trials)  # joins a full study: no trial
                s = optuna.load_study(study_name=study, storage=open_storage(storage))
                spent = spent_trials(s)
                surplus = sum(1 for t in s.trials if t.system_attrs.get("surplus"))
                overhead = max(wall - startup, 0.0) * n / trials - trial_s
                rows.append({"storage": kind, "workers": n, "wall_s": round(wall, 2),
                             "startup_s": round(startup, 2), "trials": len(spent),
                             "surplus": surplus,
                             "overhead_ms_per_trial": round(overhead * 1000, 1)})
                print(json.dumps(rows[-1]), flush=True)
                if len(spent) != trials:
                    raise SystemExit(f"{kind} x{n}: {len(spent)} trials, not {trials}")
    finally:
        nats.close()
        pg.stop()
    return rows


def bench_registry(root: Path, mb: int, rounds: int) -> dict:
    import numpy as np

    from autoopt.log import EmbeddedServer, NatsSettings
    from autoopt.registry import ModelRegistry
    from autoopt.registry_nats import NatsModelRegistry

    payload = bytearray(np.random.default_rng(0).bytes(mb * 1_000_000))
    server = EmbeddedServer(root / "nats-reg")
    url = server.start()
    settings = NatsSettings(urls=[url], request_timeout_s=30.0)
    times: dict[str, list[float]] = {k: [] for k in (
        "local_save", "local_load", "nats_save", "nats_load_cold", "nats_load_cached")}
    try:
        for i in range(rounds):
            payload[0] = i  # a new artifact each round (same content is the same release)
            files = {"model.bin": bytes(payload)}
            kw = {"model_type": "bench", "created_at": i, "data_range": (0, 1),
                  "parent_release": None}
            local = ModelRegistry(root / f"local-{i}")
            t = time.perf_counter()
            rid = local.save("BENCH", files, **kw).release_id
            times["local_save"].append(time.perf_counter() - t)
            t = time.perf_counter()
            ModelRegistry(root / f"local-{i}").load("BENCH", rid)
            times["local_load"].append(time.perf_counter() - t)

            writer = NatsModelRegistry(root / f"nats-a-{i}", settings)
            reader = NatsModelRegistry(root / f"nats-b-{i}", settings)
            try:
                writer.symbols()  # connect and open the buckets outside the timing
                reader.symbols()
                t = time.perf_counter()
                writer.save("BENCH", files, **kw)
                times["nats_save"].append(time.perf_counter() - t)
                t = time.perf_counter()
                reader.load("BENCH", rid)
                times["nats_load_cold"].append(time.perf_counter() - t)
                t = time.perf_counter()
                reader.load("BENCH", rid)
                times["nats_load_cached"].append(time.perf_counter() - t)
            finally:
                writer.close()
                reader.close()
    finally:
        server.close()
    out = {k: round(min(v), 3) for k, v in times.items()}
    out["mb"] = mb
    out["save_ratio_nats_vs_local"] = round(out["nats_save"] / out["local_save"], 1)
    out["load_ratio_cold_vs_local"] = round(out["nats_load_cold"] / out["local_load"], 1)
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--trial-ms", type=float, default=50.0)
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", choices=["studies", "registry"], default=None)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp)
        if args.only in (None, "registry"):
            bench_registry(root, args.mb, args.rounds)
        if args.only in (None, "studies"):
            bench_studies(root, args.trials, [int(w) for w in args.workers.split(",")],
                          args.trial_ms / 1000)
    print(f"load average at end: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
