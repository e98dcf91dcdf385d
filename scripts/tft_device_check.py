"""The TFT trainer on a CUDA GPU beside the CPU: fit and tuning time, scores, artifacts.

Run on a machine with a GPU (CI has none; the trainer falls back to CPU there)::

    python scripts/tft_device_check.py [--trials 8] [--cpu-threads 16]

Uses the synthetic dataset and folds of ``benches/bench_tft.py`` (10,000 1-minute bars with a
real momentum signal) and prints one JSON line per part as soon as it is measured:

* ``fit_s``: one fit at the default parameters on CUDA (after a warm-up fit, so CUDA start-up is
  not counted) and on the CPU with 1 and ``--cpu-threads`` threads;
* ``artifact``: a CUDA-trained model saved (safetensors + JSON) and loaded back predicts exactly
  what it predicted before saving; ``cuda_repeat_max_diff``: two CUDA fits with one seed;
* ``tune_cuda`` / ``tune_cpu``: Optuna tuning (same trial budget, TPE, pruning) then
  out-of-sample validation on the pipeline's purged folds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benches"))

from autoopt.tft.trainer import TFTTrainer  # noqa: E402
from bench_tft import dataset, fit_default, tune_and_validate  # noqa: E402


def emit(part: str, value: Any) -> None:
    print(json.dumps({part: value}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--cpu-threads", type=int, default=16)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check needs a GPU")
    emit("device", {"name": torch.cuda.get_device_name(0), "torch": torch.__version__})
    task = dataset("synthetic", n_trials=args.trials, threads=1)
    gpu, cpu = TFTTrainer(device="cuda"), TFTTrainer(device="cpu")

    t0 = time.perf_counter()
    fit_default(gpu, task)  # warm-up: CUDA context, kernels
    emit("fit_cuda_warmup_s", round(time.perf_counter() - t0, 3))
    emit("fit_cuda_s", round(fit_default(gpu, task), 3))
    emit("fit_cpu_1_thread_s", round(fit_default(cpu, task), 3))
    wide = dataset("synthetic", threads=args.cpu_threads)
    emit(f"fit_cpu_{args.cpu_threads}_threads_s", round(fit_default(cpu, wide), 3))

    params = gpu.default_params(task.X.shape[0])
    train, test = task.folds[-1]

    def fit_gpu() -> Any:
        return gpu.fit(task.X[train], task.y[train], params, task.feature_names, seed=7)

    a, b = fit_gpu(), fit_gpu()
    pa, pb = a.predict_proba(task.X[test]), b.predict_proba(task.X[test])
    loaded = gpu.load(a.to_files())
    emit(
        "artifact",
        {
            "trained_on": a.config["training"]["device"],
            "round_trip_identical": bool(np.array_equal(loaded.predict_proba(task.X[test]), pa)),
            "bytes": sum(len(v) for v in a.to_files().values()),
            "cuda_repeat_max_diff": float(np.max(np.abs(pa - pb))),
        },
    )
    for name, trainer, threads in (("cuda", gpu, 1), ("cpu", cpu, args.cpu_threads)):
        t = dataset("synthetic", n_trials=args.trials, threads=threads)
        t0 = time.perf_counter()
        res = tune_and_validate(trainer, t)
        res["total_s"] = time.perf_counter() - t0
        emit(f"tune_{name}", {k: round(float(v), 4) for k, v in res.items()})


if __name__ == "__main__":
    main()
