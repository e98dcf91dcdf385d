"""The README's main job, `autoopt demo`, end to end as a real process on the embedded server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end_and_replays_to_the_same_digest(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AUTOOPT_DATA_DIR": str(tmp_path / "data"),
        "AUTOOPT_PIPELINE__TRIALS": "4",
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [sys.executable, "-m", "autoopt.cli", "demo"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "nightly retrain on the history" in out
    assert re.search(r"trigger (EURUSD|GOOG): (degradation|drift\.\w+)", out), out[-3000:]
    assert re.search(r"gate for (EURUSD|GOOG) .*: (released|refused)", out)
    assert "same digest twice: yes" in out
    assert "decisions the service recorded equal the replayed ones" in out
    digest = re.search(r"digest ([0-9a-f]{64})", out).group(1)
    config_file = tmp_path / "data" / "demo" / "autoopt.toml"
    assert (tmp_path / "data" / "demo" / "retrain-summary.json").is_file()
    again = subprocess.run(
        [sys.executable, "-m", "autoopt.cli", "--config", str(config_file), "replay", "--decisions", "-q"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert f"digest {digest}" in again.stdout

    # ---- 4b. the engine loop on the planted edge: release, watcher, canary, rollback
    assert "promoted directly (first release); the watcher swapped it in" in out
    assert re.search(r"experiment canary/EDGE/\w+ \(shadow\) started", out), out[-3000:]
    assert re.search(r"canary concluded after \d+ live bars of paper outcomes", out)
    assert "the watcher swapped back" in out

    # ---- 5. the short policy backtest: its report, and its one summary event in the log
    assert "5. autoopt backtest: does retraining pay?" in out
    report = tmp_path / "data" / "demo" / "backtest.html"
    assert f"backtest report: {report}" in out
    assert report.is_file() and "Policy backtest: never, weekly, degradation" in report.read_text()
    # the seeded FLIP bars: a triggered policy adapts after the edge flips, never does not
    assert "degradation beats never after costs" in out
    assert "after costs (FLIP)" in out
    run = re.search(r"summary event system\.backtest ([0-9a-f]{32}) recorded in SYSTEM", out)
    assert run, out[-3000:]
    system = subprocess.run(
        [sys.executable, "-m", "autoopt.cli", "--config", str(config_file), "log", "replay",
         "--subject", "SYSTEM"], env=env, capture_output=True, text=True, timeout=300,
    )
    assert system.returncode == 0, system.stderr
    assert re.search(rf"system\.backtest\s+{run.group(1)} ", system.stdout), system.stdout
