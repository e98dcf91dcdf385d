"""Small objectives for `autoopt worker` in tests and benches (real Optuna trials, tiny cost)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import optuna


def quadratic(trial: optuna.Trial) -> float:
    """(x-2)² + (y+1)², reporting two steps so pruners have something to look at."""
    x = trial.suggest_float("x", -10, 10)
    y = trial.suggest_float("y", -10, 10)
    value = (x - 2) ** 2 + (y + 1) ** 2
    for step in range(2):
        trial.report(value + 1.0 - step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def slow_quadratic(trial: optuna.Trial) -> float:
    """`quadratic` after ``OBJECTIVE_TRIAL_S`` seconds (default 0.05): workers overlap."""
    time.sleep(float(os.environ.get("OBJECTIVE_TRIAL_S", "0.05")))
    return quadratic(trial)


def hang_once(trial: optuna.Trial) -> float:
    """Creates ``$OBJECTIVE_HANG_FLAG`` and hangs on the first trial this process runs (the
    test then kills it); afterwards `quadratic`."""
    flag = Path(os.environ["OBJECTIVE_HANG_FLAG"])
    if not flag.exists():
        flag.write_text(str(trial.number))
        time.sleep(3600)
    return quadratic(trial)
