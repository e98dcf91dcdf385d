"""Trials of one shared study run by several workers, never more than the study's budget.

Why: ``study.optimize(n_trials=n)`` counts per process, so k workers on one study run up to
k·n trials, and Optuna's ``MaxTrialsCallback`` stops a worker only after its trial finished,
so concurrent workers still overshoot by up to k-1.

The budget is decided by the storage's own order: every storage numbers trials 0, 1, 2... in
one total order (a row lock in PostgreSQL, the file lock in SQLite, the journal's order on
NATS). A worker asks for a trial (number k), then counts the trials numbered below k that
spend budget; at the budget or above, trial k is *surplus*: marked FAIL with the system attribute
``surplus`` and never run, and the worker stops. Two workers can never both be admitted to the
last slot, since each sees the other's lower-numbered trial.

What spends budget: running, completed and pruned trials, and trials that failed with an error
(user attribute ``error``). A worker killed mid-trial stops its heartbeat (system attribute
``heartbeat``, wall-clock seconds, every ``heartbeat_s``); a worker whose trial number reaches
the budget first marks running trials silent for ``grace_s`` FAIL with attribute ``stale``,
which frees their slots, so the study still reaches its budget of finished trials: a killed
trial is retried as a new trial. Below the budget by number a trial is admitted without
reading the others (fewer than the budget precede it), so the common path costs one ask.
A worker at the budget with trials still running waits for them to finish or go stale before
leaving, so a kill never leaves the study short. The bookkeeping lives in system attributes:
user attributes go into `TrialCompleted` events, which must not carry wall-clock heartbeats.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

SURPLUS = "surplus"
STALE = "stale"
ERROR = "error"
HEARTBEAT = "heartbeat"
WORKER = "worker"
"""System attribute naming who ran a trial (``host:pid``), for the record."""


def spends_budget(t: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial counts against the study's budget (see the module docstring)."""
    if t.system_attrs.get(SURPLUS) or t.system_attrs.get(STALE):
        return False
    if t.state == TrialState.FAIL:
        return bool(t.user_attrs.get(ERROR))
    return t.state in (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)


def spent_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's trials that spend budget, in trial order."""
    return sorted((t for t in study.get_trials(deepcopy=False) if spends_budget(t)),
                  key=lambda t: t.number)


def fail_stale(study: optuna.Study, grace_s: float, now: Callable[[], float] = time.time) -> int:
    """Mark running trials whose heartbeat is older than ``grace_s`` FAIL (``stale``)."""
    n = 0
    storage = study._storage
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = t.system_attrs.get(HEARTBEAT)
        start = t.datetime_start.timestamp() if t.datetime_start else now()
        last = float(beat) if beat is not None else start
        if now() - last > grace_s:
            try:
                storage.set_trial_system_attr(t._trial_id, STALE, True)
                if storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                    n += 1
            except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
                pass  # finished meanwhile: nothing to fail
    return n


class _Heartbeat:
    def __init__(self, study: optuna.Study, trial_id: int, every: float) -> None:
        self._storage = study._storage
        self._trial_id = trial_id
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="trial-heartbeat")

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._storage.set_trial_system_attr(self._trial_id, HEARTBEAT, time.time())
            except Exception:  # finished under us, or a storage hiccup: the next beat retries
                if self._stop.is_set():
                    return

    def __enter__(self) -> _Heartbeat:
        self._storage.set_trial_system_attr(self._trial_id, HEARTBEAT, time.time())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_budgeted(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    n_trials: int,
    *,
    heartbeat_s: float = 2.0,
    grace_s: float = 20.0,
    catch: tuple[type[BaseException], ...] = (),
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] | None = None,
    timeout_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Run trials of ``study`` until it holds ``n_trials`` that spend budget, cooperating with
    any other worker doing the same; returns how many trials this worker ran.

    ``timeout_s`` (timed by ``clock``): no trial starts once this long has passed (a started
    one finishes), as Optuna's ``optimize(timeout=)``. A budget already spent (a resumed or a
    joined study) starts nothing and asks for no trial, so a rerun's trials stay numbered on
    from the last; before returning, the worker waits for other workers' running trials to
    finish (or go stale), so the caller sees every trial of the budget."""
    ran = 0
    t0 = clock()
    while True:
        if timeout_s is not None and clock() - t0 >= timeout_s:
            return ran
        if len(spent_trials(study)) >= n_trials:
            if _wait_for_running(study, None, grace_s, heartbeat_s):
                continue  # a stale trial was failed: its slot is free again
            return ran
        trial = study.ask()
        # below the budget by number, fewer trials precede it: admitted without reading them
        if trial.number >= n_trials and _spent_before(study, trial.number, grace_s) >= n_trials:
            study._storage.set_trial_system_attr(trial._trial_id, SURPLUS, True)
            study.tell(trial, state=TrialState.FAIL)
            if _wait_for_running(study, trial.number, grace_s, heartbeat_s):
                continue  # a stale trial was failed: its slot is free again
            return ran
        study._storage.set_trial_system_attr(trial._trial_id, WORKER,
                                             f"{socket.gethostname()}:{os.getpid()}")
        with _Heartbeat(study, trial._trial_id, heartbeat_s):
            try:
                value = objective(trial)
            except optuna.TrialPruned:
                frozen = study.tell(trial, state=TrialState.PRUNED)
            except catch as exc:
                trial.set_user_attr(ERROR, f"{type(exc).__name__}: {exc}"[:500])
                frozen = study.tell(trial, state=TrialState.FAIL)
            except BaseException as exc:
                trial.set_user_attr(ERROR, f"{type(exc).__name__}: {exc}"[:500])
                study.tell(trial, state=TrialState.FAIL)
                raise
            else:
                frozen = study.tell(trial, value)
        ran += 1
        for cb in callbacks or ():
            cb(study, frozen)


def _spent_before(study: optuna.Study, number: int, grace_s: float) -> int:
    """Trials numbered below ``number`` that spend budget, after failing stale ones."""
    fail_stale(study, grace_s)
    return sum(spends_budget(t) for t in study.get_trials(deepcopy=False) if t.number < number)


def _wait_for_running(study: optuna.Study, below: int | None, grace_s: float,
                      poll_s: float) -> bool:
    """Wait while trials numbered below ``below`` (None: any) run; True when one went stale
    (and was failed), False when all finished."""
    while True:
        running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                   if below is None or t.number < below]
        if not running:
            return False
        if fail_stale(study, grace_s):
            return True
        time.sleep(poll_s)




__all__ = ["ERROR", "HEARTBEAT", "STALE", "SURPLUS", "WORKER", "fail_stale", "run_budgeted",
           "spends_budget", "spent_trials"]
