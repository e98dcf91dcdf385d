"""The Optuna plumbing every trainer shares: the study of a `TrainTask`, its pruner, and the
`TrialRecord` each trial becomes. Trainers differ in what a pruning step is (boosting rounds,
epochs), which they pass in; everything else about a study is decided once, here."""

from __future__ import annotations

import optuna

from autoopt.errors import ConfigError
from autoopt.plugins.interfaces import DEFAULT_MIN_COMPLETED_TRIALS, TrainTask, TrialRecord

PRUNERS = ("median", "successive_halving", "hyperband", "none")

FINISHED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)
"""Trial states that count as tried (the N of the Deflated Sharpe Ratio)."""


class CompletedFirstPruner(optuna.pruners.BasePruner):
    """Wraps any pruner so that pruning never leaves fewer than ``min_completed`` completed
    trials.

    Why: the gate selects among completed trials and deflates by every trial started; a pruner
    that stops most trials early (successive halving at reduction factor 3 stops two in three)
    could otherwise leave fewer completed trials than the gate needs, so the better it pruned,
    the likelier a real edge was refused. Counting trials in the study (resumed ones included)
    makes the rule the same for every pruner kind.

    Where the reserve is held: with ``budget`` (the study's trial budget) the inner pruner acts
    from the first trial, and a trial is spared only when pruning it would leave the budget
    unable to reach ``min_completed`` completions (completed + other running + not started <
    ``min_completed``): the reserve sits at the end of the budget. Without a budget (a search
    that runs until it is stopped), nothing is pruned until ``min_completed`` trials completed.
    Why not at the start: the first trials are the sampler's random draws, and one at a
    learning rate near 0.01 boosts ~300 rounds; on the nightly benchmark the two random
    start-up trials that had to run to the end cost as much as the other 28 trials together,
    while the pruner stops such trials at its first rung once it acts. The gate's decisions
    were measured both ways with ``scripts/eval_decisions.py`` (random walks and planted edges,
    three seed sets): the same table.
    """

    def __init__(self, inner: optuna.pruners.BasePruner, min_completed: int,
                 budget: int | None = None) -> None:
        if min_completed < 0:
            raise ConfigError(f"min_completed_trials must be >= 0, got {min_completed}")
        self.inner = inner
        self.min_completed = min_completed
        self.budget = budget
        self._armed: set[tuple[int, int]] = set()
        """Studies known to hold ``min_completed`` completed trials: a study never loses a
        completed trial, so it is counted (a storage query per report) only until then."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        key = (id(study._storage), study._study_id)
        if self.min_completed and key not in self._armed:
            trials = study.get_trials(deepcopy=False)
            completed = sum(1 for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
            if completed >= self.min_completed:
                self._armed.add(key)
            elif self.budget is None:
                return False
            else:
                started = [t for t in trials if t.state != optuna.trial.TrialState.WAITING]
                others_running = sum(1 for t in started if t.state ==
                                     optuna.trial.TrialState.RUNNING and t.number != trial.number)
                not_started = max(0, self.budget - len(started))
                if completed + others_running + not_started < self.min_completed:
                    return False
        return self.inner.prune(study, trial)


def make_pruner(
    kind: str,
    *,
    enabled: bool,
    warmup_steps: int,
    interval_steps: int,
    min_resource: int,
    max_resource: int | str = "auto",
    min_completed: int = DEFAULT_MIN_COMPLETED_TRIALS,
    reduction_factor: int = 3,
    budget: int | None = None,
) -> optuna.pruners.BasePruner:
    """The pruner named by ``kind``, in the trainer's step unit, never leaving fewer than
    ``min_completed`` completed trials (`CompletedFirstPruner`: with a trial ``budget`` the
    reserve is held at its end, else pruning waits for them); ``NopPruner`` when off.
    ``reduction_factor`` (successive halving, hyperband): one trial in that many goes on at
    each rung."""
    if int(reduction_factor) < 2:
        raise ConfigError(f"reduction_factor must be >= 2, got {reduction_factor}")
    if not enabled or kind == "none":
        return optuna.pruners.NopPruner()
    inner: optuna.pruners.BasePruner
    if kind == "median":
        inner = optuna.pruners.MedianPruner(
            n_startup_trials=0, n_warmup_steps=warmup_steps, interval_steps=interval_steps
        )
    elif kind == "successive_halving":
        inner = optuna.pruners.SuccessiveHalvingPruner(
            min_resource=min_resource, reduction_factor=int(reduction_factor),
            min_early_stopping_rate=0
        )
    elif kind == "hyperband":
        inner = optuna.pruners.HyperbandPruner(
            min_resource=min_resource, max_resource=max_resource,
            reduction_factor=int(reduction_factor)
        )
    else:
        raise ConfigError(f"unknown pruner {kind!r}; known: {list(PRUNERS)}")
    return CompletedFirstPruner(inner, min_completed, budget)


def pruning_budget_note(
    n_trials: int, *, pruning: bool, pruner: str, min_completed: int
) -> str | None:
    """One line saying up front that a trial budget leaves the pruner nothing to do, or None.

    Said before the work starts rather than discovered after it: with ``n_trials`` at or below
    ``min_completed`` every trial runs to completion, so pruning saves nothing."""
    if not pruning or pruner == "none" or n_trials > min_completed:
        return None
    return (
        f"pruning ({pruner}) is idle for this run: {n_trials} trials <= "
        f"min_completed_trials={min_completed}, so every trial runs to completion"
    )


def open_study(task: TrainTask, pruner: optuna.pruners.BasePruner, owner: str,
               sampler_seed: int | None = None) -> optuna.Study:
    """Create or resume the task's study: minimised, TPE seeded with the task's seed (or
    ``sampler_seed``: a worker joining another process's study must not draw that process's
    random start-up parameters a second time)."""
    if task.storage is not None and not task.study_name:
        raise ConfigError(f"{owner}: a persistent study needs a study_name")
    from autoopt.studies import open_storage  # SQLite, PostgreSQL or the NATS journal

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=task.study_name or None,
        storage=open_storage(task.storage),
        load_if_exists=True,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(
            seed=task.seed if sampler_seed is None else sampler_seed, n_startup_trials=8),
        pruner=pruner,
    )


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's tried trials (resumed ones included), in trial order; not the ones a shared
    study's workers never ran (``surplus``) or lost with a killed worker (``stale``), see
    `autoopt.studies.budget`."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state in FINISHED
            and not t.system_attrs.get("surplus") and not t.system_attrs.get("stale")]
    return sorted(done, key=lambda t: t.number)


def trial_record(t: optuna.trial.FrozenTrial) -> TrialRecord:
    """What a `TrialCompleted` event carries for one trial."""
    start, end = t.datetime_start, t.datetime_complete
    duration = (end - start).total_seconds() if start and end else 0.0
    value = t.value if t.state == optuna.trial.TrialState.COMPLETE else None
    return TrialRecord(
        number=t.number,
        state=t.state.name,
        params=dict(t.params),
        value=float(value) if value is not None else None,
        duration_s=float(duration),
        user_attrs=dict(t.user_attrs),
    )


__all__ = [
    "DEFAULT_MIN_COMPLETED_TRIALS",
    "FINISHED",
    "PRUNERS",
    "CompletedFirstPruner",
    "finished_trials",
    "make_pruner",
    "open_study",
    "pruning_budget_note",
    "trial_record",
]
