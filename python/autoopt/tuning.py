"""The Optuna plumbing every trainer shares: the study of a `TrainTask`, its pruner, and the
`TrialRecord` each trial becomes. Trainers differ in what a pruning step is (boosting rounds,
epochs), which they pass in; everything else about a study is decided once, here."""

from __future__ import annotations

import optuna

from autoopt.errors import ConfigError
from autoopt.plugins.interfaces import TrainTask, TrialRecord

PRUNERS = ("median", "successive_halving", "hyperband", "none")
FINISHED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)
"""Trial states that count as tried (the N of the Deflated Sharpe Ratio)."""


def make_pruner(
    kind: str,
    *,
    enabled: bool,
    warmup_steps: int,
    interval_steps: int,
    min_resource: int,
    max_resource: int | str = "auto",
) -> optuna.pruners.BasePruner:
    """The pruner named by ``kind``, in the trainer's step unit; ``NopPruner`` when off."""
    if not enabled or kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=4, n_warmup_steps=warmup_steps, interval_steps=interval_steps
        )
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=min_resource, reduction_factor=3, min_early_stopping_rate=0
        )
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=min_resource, max_resource=max_resource, reduction_factor=3
        )
    raise ConfigError(f"unknown pruner {kind!r}; known: {list(PRUNERS)}")


def open_study(task: TrainTask, pruner: optuna.pruners.BasePruner, owner: str) -> optuna.Study:
    """Create or resume the task's study: minimised, TPE seeded with the task's seed."""
    if task.storage is not None and not task.study_name:
        raise ConfigError(f"{owner}: a persistent study needs a study_name")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=task.study_name or None,
        storage=task.storage,
        load_if_exists=True,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=task.seed, n_startup_trials=8),
        pruner=pruner,
    )


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's tried trials (resumed ones included), in trial order."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state in FINISHED]
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


__all__ = ["FINISHED", "PRUNERS", "finished_trials", "make_pruner", "open_study", "trial_record"]
