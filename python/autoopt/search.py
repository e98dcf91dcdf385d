"""The core's hyperparameter search: trainers describe a model family (`ModelTrainer`), the core
runs the study.

Why the core owns it: what a trial *means* to the gate (the objective, the out-of-sample path
after costs whose Sharpe ratios the Deflated Sharpe Ratio deflates, the returns PBO and the trial
ledger read, the count of every trial started) must be the same for every trainer, and so must
the study's plumbing (storage, seeded sampler, pruner, trial budget across workers, time
budget). A trainer that had to get all that right itself took 69 lines for a grid search; an SDK
trainer writes ``search_space``, ``fit``, ``predict``, ``save`` and ``load``.

One trial (`tune`): the trainer's ``search_space`` gives the parameters; one model per purged CV
fold is ``fit`` on the fold's training rows (its test rows passed as ``valid``, a ``report``
callback for pruning), its test rows scored with ``predict``; the objective is the fold-mean log
loss; the user attributes record ``sharpe_per_period``, ``sharpe`` (annualised) and ``n_trades``
of the concatenated out-of-sample path after the task's costs. A trainer with a ``fold_search``
fast path (LightGBM boosts all folds in lockstep) fits the folds itself and hands back the
loss and the test probabilities; the core scores them the same way.

Trials run through `autoopt.studies.run_budgeted`, so any number of workers (`autoopt worker`)
can join the study and the total holds the budget exactly; the study's user attributes record
the task's `TrainTask.study_attrs` for them.

`SearchTrainer` adapts an SDK trainer to the interface the pipeline talks to (`Trainer`:
``tune``, ``fit`` -> `Predictor`, ``load``); `autoopt.plugins.Plugins.trainer` applies it.
Trainers that still define ``tune`` themselves (the legacy interface) are used as they are.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from autoopt.errors import ArtifactError, DataError
from autoopt.plugins.interfaces import (
    FoldsFit,
    Report,
    SearchContext,
    TrainTask,
    TuneResult,
    is_sdk_trainer,
)
from autoopt.validation.metrics import (
    log_loss,
    positions_from_proba,
    sharpe_ratio,
    strategy_returns,
)

if TYPE_CHECKING:
    import optuna

OBJECTIVE = "log_loss"
DEFAULT_MAX_STEPS = 1000
FIXED_PARAMS = "fixed_params"
"""User attribute holding the parameters ``search_space`` returned beyond the suggested ones."""
FEATURES_FILE = "autoopt-features.json"
"""Artifact file the core adds beside an SDK trainer's own: the model's feature names."""


# ------------------------------------------------------------------------------ metrics


def oos_path(task: TrainTask, probas: Sequence[np.ndarray]) -> tuple[float, float, int, np.ndarray]:
    """(per-period Sharpe, annualised Sharpe, trades, returns) of the strategy that trades the
    test-fold probabilities, on the concatenated out-of-sample path after the task's costs."""
    parts = []
    n_trades = 0
    for proba, (_, test) in zip(probas, task.folds, strict=True):
        pos = positions_from_proba(proba)
        n_trades += int(np.count_nonzero(np.diff(pos, prepend=0.0)))
        parts.append(strategy_returns(pos, task.forward_returns[np.sort(test)],
                                      task.costs.fee_bps, task.costs.slippage_bps))
    r = np.concatenate(parts)
    return sharpe_ratio(r), sharpe_ratio(r, task.periods_per_year), n_trades, r


def search_context(task: TrainTask) -> SearchContext:
    return SearchContext(n_train_min=min(len(tr) for tr, _ in task.folds), n_rows=task.X.shape[0],
                         n_features=task.X.shape[1], feature_names=tuple(task.feature_names),
                         seed=task.seed)


def check_labels(task: TrainTask) -> None:
    """0/1 labels, and both classes in every fold's training rows (else a fold cannot fit)."""
    y = np.asarray(task.y)
    if not np.all(np.isin(y, (0, 1))):
        raise DataError(f"{task.symbol}: the labels must be 0/1")
    for k, (train, _) in enumerate(task.folds):
        if np.unique(y[train]).size < 2:
            raise DataError(f"{task.symbol}: fold {k} training labels hold one class only")


# ------------------------------------------------------------------------------ the study


def pruner_for(trainer: Any, task: TrainTask) -> optuna.pruners.BasePruner:
    """The task's pruner in the trainer's step unit: its own (``pruner_steps``) on the fold
    fast path, else fold k's step s is step ``k * max_steps + s`` and each fold's end is
    reported at ``(k + 1) * max_steps`` (so nothing is pruned before the first fold ends)."""
    from autoopt import tuning

    if getattr(trainer, "fold_search", None) is not None:
        steps = dict(trainer.pruner_steps())
    else:
        span = max_steps(trainer)
        steps = {"warmup_steps": span, "interval_steps": 1, "min_resource": span,
                 "max_resource": span * len(task.folds)}
    return tuning.make_pruner(task.pruner, enabled=task.pruning,
                              min_completed=task.min_completed_trials, budget=task.n_trials,
                              **steps)


def max_steps(trainer: Any) -> int:
    return max(int(getattr(trainer, "max_steps", DEFAULT_MAX_STEPS) or DEFAULT_MAX_STEPS), 2)


def open_search_study(trainer: Any, task: TrainTask, *, join: bool = False) -> optuna.Study:
    """Create or resume the task's study: minimised, TPE seeded with the task's seed; a joining
    worker's sampler is seeded by the task's seed, its host and its process, so two workers
    never draw the same random start-up trials (their trials depend on timing anyway)."""
    from autoopt import tuning

    seed = None
    if join:
        import os
        import socket
        import zlib

        seed = zlib.crc32(f"{task.seed}/{socket.gethostname()}/{os.getpid()}".encode())
    return tuning.open_study(task, pruner_for(trainer, task), type(trainer).__name__, seed)


def record_study_attrs(study: optuna.Study, attrs: Mapping[str, Any]) -> None:
    """Write what a joining worker needs (`TrainTask.study_attrs`) once: the first writer wins,
    so a resumed retrain never rewrites what workers already compared against."""
    have = study.user_attrs
    for key, value in attrs.items():
        if key not in have:
            study.set_user_attr(key, value)


def _fold_report(trial: optuna.Trial, k: int, span: int) -> Report:
    def report(step: int, loss: float) -> None:
        import optuna

        if not 1 <= step < span or not math.isfinite(loss):
            return  # outside this fold's step range: not comparable across trials
        trial.report(float(loss), step=k * span + int(step))
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned in fold {k} at step {step}: loss={loss:.5f}")

    return report


def _fit_folds(trainer: Any, task: TrainTask, params: Mapping[str, Any],
               trial: optuna.Trial | None) -> tuple[float, list[np.ndarray]]:
    """The generic path: one ``fit`` per fold, the fold-mean log loss and the test
    probabilities; the running fold mean reported at each fold's end."""
    import optuna

    span = max_steps(trainer)
    losses: list[float] = []
    probas: list[np.ndarray] = []
    for k, (train, test) in enumerate(task.folds):
        train, test = np.sort(train), np.sort(test)
        model = trainer.fit(
            task.X[train], task.y[train], params, feature_names=tuple(task.feature_names),
            seed=task.seed, threads=task.threads, valid=(task.X[test], task.y[test]),
            report=_fold_report(trial, k, span) if trial is not None else None)
        p = np.asarray(trainer.predict(model, task.X[test]), dtype=np.float64).reshape(-1)
        if p.shape != test.shape or not np.all(np.isfinite(p)):
            raise DataError(f"{task.symbol}: trainer {trainer.name!r} must predict one finite "
                            f"probability per row: got shape {p.shape} for {test.size} rows "
                            f"of fold {k}")
        losses.append(log_loss(task.y[test], p))
        probas.append(p)
        if trial is not None:
            trial.report(float(np.mean(losses)), step=(k + 1) * span)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {k}: log_loss={np.mean(losses):.5f}")
    return float(np.mean(losses)), probas


def tune(trainer: Any, task: TrainTask, *, join: bool = False, grace_s: float = 20.0,
         clock: Callable[[], float] = time.monotonic) -> TuneResult:
    """Run the task's search for an SDK trainer (see the module docstring) and return every
    trial the study holds (other workers' and resumed ones too) with the best one's recipe.

    ``join``: a worker joining a running study (`autoopt worker --study`): it neither enqueues
    the default trial nor records the study attributes, it only runs trials under the budget.
    ``clock`` times the time budget (``task.time_budget_s``); ``grace_s``: seconds without a
    heartbeat before another worker's running trial counts as dead (`run_budgeted`)."""
    from autoopt import tuning
    from autoopt.studies.budget import run_budgeted

    check_labels(task)
    ctx = search_context(task)
    study = open_search_study(trainer, task, join=join)
    first_new = len(study.get_trials(deepcopy=False))  # trials numbered from here are this run's
    if not join:
        if not tuning.finished_trials(study):
            defaults = getattr(trainer, "default_params", None)
            if defaults is not None:
                study.enqueue_trial(dict(defaults(ctx.n_train_min)))
        if task.study_attrs and task.storage is not None:
            record_study_attrs(study, task.study_attrs)
    prune = task.pruning and task.pruner != "none"
    trial_returns: dict[int, np.ndarray] = {}
    # the best refit-equal trial of this run so far: ((loss, number), its fold predictions)
    best_refit: list[tuple[tuple[float, int], tuple[np.ndarray, ...]]] = []
    fast = trainer.fold_search(task) if getattr(trainer, "fold_search", None) else None

    def objective(trial: optuna.Trial) -> float:
        params = dict(trainer.search_space(trial, ctx))
        fixed = {k: v for k, v in params.items() if k not in trial.params or trial.params[k] != v}
        if fixed:
            trial.set_user_attr(FIXED_PARAMS, fixed)
        if fast is not None:
            fit: FoldsFit = fast.run(params, _trial_report(trial) if prune else None)
            loss, probas, attrs = fit.loss, list(fit.probas), dict(fit.user_attrs)
            if fit.refit_equal and math.isfinite(loss) and (
                    not best_refit or (loss, trial.number) < best_refit[0][0]):
                best_refit[:] = [((float(loss), trial.number), tuple(fit.probas))]
        else:
            loss, probas = _fit_folds(trainer, task, params, trial if prune else None)
            attrs = {}
        sr, sr_annual, n_trades, oos = oos_path(task, probas)
        trial_returns[trial.number] = oos.astype(np.float32)
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr("sharpe_per_period", sr)
        trial.set_user_attr("sharpe", sr_annual)
        trial.set_user_attr("n_trades", n_trades)
        if not math.isfinite(loss):
            raise DataError(f"{task.symbol}: trial {trial.number} produced log loss {loss}")
        return float(loss)

    reported: set[int] = set()

    def report(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        del study
        reported.add(frozen.number)
        if task.on_trial is not None:
            task.on_trial(tuning.trial_record(frozen))

    try:
        run_budgeted(study, objective, task.n_trials, callbacks=[report],
                     catch=tuple(getattr(trainer, "fit_errors", ()) or ()),
                     timeout_s=task.time_budget_s, clock=clock, grace_s=grace_s)
    finally:
        if fast is not None:
            fast.close()
    result = result_of(trainer, study, task.symbol, trial_returns)
    if best_refit and best_refit[0][0][1] == result.best_trial:
        result = replace(result, best_probas=best_refit[0][1])
    if task.on_trial is not None and not join:
        # the trials workers ran during this search (`autoopt worker`), so the retrain's record
        # (TrialCompleted events, progress) holds every trial of its budget; resumed ones
        # (numbered before this run) were recorded by the run that tried them
        for rec in result.trials:
            if rec.number >= first_new and rec.number not in reported:
                task.on_trial(rec)
    return result


def _trial_report(trial: optuna.Trial) -> Report:
    """The fast path's report: the fold-mean loss at ``step``, pruned when the pruner says."""
    def report(step: int, loss: float) -> None:
        import optuna

        trial.report(float(loss), step=int(step))
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step}: log_loss={loss:.5f}")

    return report


def result_of(trainer: Any, study: optuna.Study, symbol: str,
              trial_returns: Mapping[int, np.ndarray]) -> TuneResult:
    """Every tried trial of the study and the best completed one's fit recipe."""
    import optuna

    from autoopt import tuning

    trials = tuning.finished_trials(study)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise DataError(f"{symbol}: no trial of study {study.study_name!r} completed "
                        f"({len(trials)} tried)")
    best = min(complete, key=lambda t: (t.value, t.number))
    params = dict(best.params) | dict(best.user_attrs.get(FIXED_PARAMS) or {})
    final = getattr(trainer, "final_params", None)
    if final is not None:
        params = dict(final(params, dict(best.user_attrs)))
    done = {t.number for t in complete}
    return TuneResult(
        study_name=study.study_name, params=params, best_value=float(best.value),  # type: ignore[arg-type]
        best_trial=best.number, trials=tuple(tuning.trial_record(t) for t in trials),
        objective=OBJECTIVE,
        trial_returns={k: v for k, v in trial_returns.items() if k in done})


# ------------------------------------------------------------------------------ the adapter


class ModelPredictor:
    """An SDK trainer's model behind the `Predictor` interface the pipeline, the registry and
    watchers use: predictions through ``trainer.predict``, files through ``trainer.save`` plus
    the feature names (`FEATURES_FILE`), so a trainer need not store them itself."""

    def __init__(self, trainer: Any, model: Any, feature_names: Sequence[str]) -> None:
        self.trainer = trainer
        self.model = model
        self.feature_names = tuple(feature_names)

    def __getattr__(self, name: str) -> Any:  # e.g. a sequence model's `lookback`
        if name in ("trainer", "model"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise DataError(f"{self.trainer.name} model expects {len(self.feature_names)} "
                            f"features {list(self.feature_names)}, got an array of shape {X.shape}")
        return np.asarray(self.trainer.predict(self.model, X), dtype=np.float64).reshape(-1)

    def to_files(self) -> dict[str, bytes]:
        files = dict(self.trainer.save(self.model))
        if FEATURES_FILE in files:
            raise ArtifactError(f"trainer {self.trainer.name!r} saved a file named "
                                f"{FEATURES_FILE!r}, which autoopt reserves")
        return files | {FEATURES_FILE: json.dumps(list(self.feature_names)).encode()}

    def importance(self, kind: str = "gain") -> dict[str, float]:
        own = getattr(self.trainer, "importance", None)
        if own is None:
            return dict.fromkeys(self.feature_names, 0.0)
        values = own(self.model, kind)
        if isinstance(values, Mapping):
            return {str(k): float(v) for k, v in values.items()}
        return {n: float(v) for n, v in zip(self.feature_names, values, strict=True)}


def _is_predictor(model: Any) -> bool:
    return all(hasattr(model, a) for a in ("predict_proba", "to_files", "feature_names"))


class SearchTrainer:
    """An SDK trainer (`ModelTrainer`) seen through the pipeline's `Trainer` interface: ``tune``
    is the core's search, ``fit`` and ``load`` give `Predictor`s. Other attributes (e.g.
    ``parallel_folds``) are the trainer's own."""

    def __init__(self, sdk: Any) -> None:
        self.sdk = sdk
        self.name = sdk.name
        self.model_type = sdk.model_type

    def __getattr__(self, name: str) -> Any:
        if name == "sdk":
            raise AttributeError(name)
        return getattr(self.sdk, name)

    def __repr__(self) -> str:
        return f"SearchTrainer({self.sdk!r})"

    def tune(self, task: TrainTask) -> TuneResult:
        return tune(self.sdk, task)

    def study(self, task: TrainTask) -> optuna.Study:
        return open_search_study(self.sdk, task)

    def default_params(self, n_train: int) -> dict[str, Any]:
        """The trainer's own, else one trial sampled from its search space (seeded)."""
        own = getattr(self.sdk, "default_params", None)
        if own is not None:
            return dict(own(n_train))
        import optuna

        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        ctx = SearchContext(n_train_min=n_train, n_rows=n_train, n_features=0,
                            feature_names=(), seed=0)
        return dict(self.sdk.search_space(study.ask(), ctx))

    def fit(self, X: np.ndarray, y: np.ndarray, params: Mapping[str, Any],
            feature_names: Sequence[str], *, seed: int = 42, threads: int = 1) -> Any:
        model = self.sdk.fit(X, y, params, feature_names=tuple(feature_names), seed=seed,
                             threads=threads)
        return model if _is_predictor(model) else ModelPredictor(self.sdk, model, feature_names)

    def load(self, files: Mapping[str, bytes]) -> Any:
        files = dict(files)
        names = files.pop(FEATURES_FILE, None)
        model = self.sdk.load(files)
        if _is_predictor(model):
            return model
        if names is None:
            raise ArtifactError(f"{self.name} artifact has no {FEATURES_FILE!r}; "
                                f"files: {sorted(files)}")
        try:
            feature_names = [str(n) for n in json.loads(names)]
        except (ValueError, TypeError) as exc:
            raise ArtifactError(f"{self.name} artifact: unreadable {FEATURES_FILE}: {exc}") from None
        return ModelPredictor(self.sdk, model, feature_names)


def as_trainer(component: Any) -> Any:
    """The pipeline's view of a registered trainer: an SDK trainer adapted (`SearchTrainer`),
    a legacy one (its own ``tune``) as it is."""
    if isinstance(component, SearchTrainer) or not is_sdk_trainer(component):
        return component
    return SearchTrainer(component)


__all__ = ["FEATURES_FILE", "FIXED_PARAMS", "OBJECTIVE", "ModelPredictor", "SearchTrainer",
           "as_trainer", "check_labels", "oos_path", "open_search_study", "pruner_for",
           "record_study_attrs", "result_of", "search_context", "tune"]
