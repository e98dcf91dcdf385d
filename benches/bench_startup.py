"""Start-up time and resident memory of autoopt's processes (issue 23, "Lean processes").

Reported, not asserted. Each figure is taken from a fresh process, as an operator runs it:

* ``--help`` / ``version`` / ``plugins``: wall time of the console command, min of 5 runs;
* idle ``serve``: VmRSS (/proc/<pid>/status) of the service once ``/readyz`` answers 200, with
  the default config (LightGBM only) and the embedded nats-server (reported on its own);
* engine: VmRSS of a process after ``await ModelWatcher.open(symbol, config)`` and one
  ``predict_proba`` on a LightGBM release, made by a real ``autoopt retrain`` just before;
* nightly retrain: peak RSS of ``autoopt retrain`` on 50,000 one-minute bars (LightGBM, 8 trials),
  from ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a wrapper process around it.

With ``--before DIR`` (a ``git worktree`` of an older commit, with the built ``_native`` module
copied into ``DIR/python/autoopt``) every figure is measured for that tree too, in the same run,
by putting its ``python`` and plugin folders first on ``PYTHONPATH``::

    git worktree add /tmp/lean-old <commit> && cp python/autoopt/_native*.so /tmp/lean-old/python/autoopt/
    make bench-lean BEFORE=/tmp/lean-old      # or: python benches/bench_startup.py --before /tmp/lean-old

Results of the run recorded in ``benches/RESULTS.md`` ("Lean processes").
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

GOALS = {
    "help_s": 0.5, "version_s": 0.5, "plugins_s": 1.0, "serve_idle_mb": 200.0,
    "engine_mb": 150.0,
}
PERMISSIVE_GATE = ("[pipeline.gate]\ndsr_threshold = 0.0\nmin_trades = 0\nmargin = 0.0\n"
                   "max_pbo = 1.0\nholdout_min_sharpe = -inf\n")

ENGINE = textwrap.dedent(
    """
    import asyncio, json, sys
    import numpy as np

    def rss_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

    from autoopt.client import ModelWatcher
    from autoopt.config import load_config
    after_import = rss_kb()

    async def follow():
        watcher = await ModelWatcher.open(sys.argv[1], load_config(None))
        try:
            model = watcher.current
            X = np.random.default_rng(0).normal(size=(64, len(model.feature_names)))
            watcher.predict_proba(X)
            print(json.dumps({"import_kb": after_import, "open_kb": rss_kb(),
                              "torch": "torch" in sys.modules}))
        finally:
            await watcher.close()

    asyncio.run(follow())
    """
)

PEAK = textwrap.dedent(
    """
    import resource, subprocess, sys
    rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
    print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    """
)


def tree_env(before: Path | None, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOOPT_")}
    env.update(AUTOOPT_DATA_DIR=str(work / "data"), AUTOOPT_CONFIG=str(work / "autoopt.toml"),
               OMP_WAIT_POLICY="PASSIVE")
    if before is not None:
        paths = [before / "python", before / "plugins/autoopt-builtins", before / "plugins/autoopt-tft"]
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autoopt.cli", *args]


def wall(env: dict[str, str], cwd: Path, *args: str, runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cli(*args), env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120, check=False)
        best = min(best, time.perf_counter() - t0)
    return best


def vmrss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def nats_servers_of(data_dir: Path) -> list[int]:
    """Pids of the embedded nats-server(s) storing into ``data_dir``."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "nats-server" in cmd and str(data_dir) in cmd:
            out.append(int(proc.name))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def idle_serve(env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(service MB, embedded nats-server MB) once /readyz answers, with no job running."""
    port = free_port()
    data_dir = cwd / "serve-data"
    env = dict(env, AUTOOPT_DATA_DIR=str(data_dir))
    env.pop("AUTOOPT_CONFIG")  # the default config
    proc = subprocess.Popen(cli("serve", "--port", str(port)), env=env, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not become ready (exit {proc.poll()})")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        time.sleep(2.0)  # settle: the first poll of every consumer has run
        service = vmrss_kb(proc.pid)
        nats = sum(vmrss_kb(c) for c in nats_servers_of(data_dir))
        return service / 1024, nats / 1024
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def write_bars(folder: Path, n: int = 50_000, seed: int = 7) -> str:
    """``n`` one-minute bars of a seeded random walk with a persistent hidden trend."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    mu = np.zeros(n)
    shocks = rng.standard_normal(n) * 0.2 * np.sqrt(1 - 0.998**2)
    for t in range(1, n):
        mu[t] = 0.998 * mu[t - 1] + shocks[t]
    close = 100.0 * np.exp(np.cumsum((mu + rng.standard_normal(n)) * 4e-4))
    open_ = np.r_[100.0, close[:-1]]
    wick = np.abs(rng.standard_normal((2, n))) * 4e-4 * close
    folder.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({
        "ts": 1_704_067_200_000_000_000 + np.arange(n, dtype=np.int64) * 60_000_000_000,
        "open": open_, "high": np.maximum(open_, close) + wick[0],
        "low": np.minimum(open_, close) - wick[1], "close": close,
        "volume": rng.lognormal(3.0, 0.5, n),
    }).write_parquet(folder / "SYN.parquet")
    return f"file:{folder}"


def retrain_peak(env: dict[str, str], cwd: Path, source: str, trials: int) -> float:
    """Peak RSS (MB) of the retrain process (and any child it waited for)."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK, *cli("retrain", "--source", source, "--trials", str(trials),
                                          "-q")],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=1800, check=True,
    )
    rc, kb = out.stdout.split()
    if rc != "0":
        raise RuntimeError(f"retrain exited {rc}")
    return int(kb) / 1024


def engine(env: dict[str, str], cwd: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", ENGINE, "SYN"], env=env, cwd=cwd,
                         capture_output=True, text=True, timeout=300, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return {"import_mb": data["import_kb"] / 1024, "open_mb": data["open_kb"] / 1024,
            "torch": data["torch"]}


def measure(before: Path | None, root: Path, source: str, trials: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="tree-", dir=root))
    (work / "autoopt.toml").write_text(PERMISSIVE_GATE)
    env = tree_env(before, work)
    result: dict[str, float] = {}
    result["help_s"] = wall(env, work, "--help")
    result["version_s"] = wall(env, work, "version")
    result["plugins_s"] = wall(env, work, "plugins")
    result["serve_idle_mb"], result["serve_nats_mb"] = idle_serve(env, work)
    result["retrain_peak_mb"] = retrain_peak(env, work, source, trials)
    eng = engine(env, work)
    result["engine_import_mb"], result["engine_mb"] = eng["import_mb"], eng["open_mb"]
    result["engine_torch"] = float(eng["torch"])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="A worktree of the commit to compare with.")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--bars", type=int, default=50_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        root = Path(tmp)
        source = write_bars(root / "bars", args.bars)
        rows = {}
        if args.before is not None:
            rows["before"] = measure(args.before.resolve(), root, source, args.trials)
        rows["after"] = measure(None, root, source, args.trials)
    keys = list(rows["after"])
    print(f"{'figure':<18}" + "".join(f"{k:>12}" for k in rows) + f"{'goal':>10}")
    for key in keys:
        goal = GOALS.get(key)
        print(f"{key:<18}" + "".join(f"{rows[k][key]:>12.2f}" for k in rows)
              + (f"{goal:>10}" if goal is not None else ""))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
