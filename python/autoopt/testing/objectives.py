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


def rising(trial: optuna.Trial) -> float:
    """Reports its own trial number at step 0 (then sleeps ``OBJECTIVE_TRIAL_S``), so a median
    pruner prunes every trial once enough earlier ones completed, whichever worker ran them;
    records the worker's pid in user attribute ``pid``. With ``OBJECTIVE_BARRIER`` (a folder)
    every trial first waits for ``OBJECTIVE_WORKERS`` workers to have started."""
    barrier = os.environ.get("OBJECTIVE_BARRIER")
    if barrier:  # wait (60 s at most) until OBJECTIVE_WORKERS workers have started
        Path(barrier, str(os.getpid())).touch()
        deadline = time.monotonic() + 60
        while (len(os.listdir(barrier)) < int(os.environ["OBJECTIVE_WORKERS"])
               and time.monotonic() < deadline):
            time.sleep(0.05)
    trial.set_user_attr("pid", os.getpid())
    trial.report(float(trial.number), 0)
    if trial.should_prune():
        raise optuna.TrialPruned()
    time.sleep(float(os.environ.get("OBJECTIVE_TRIAL_S", "0.05")))
    return float(trial.number)
