"""The steps of one (symbol, model) retrain that decide something, free of the event log:
select features, tune, validate the challenger, score a champion's recipe on the same folds, and
judge them with the gate.

Why a module of its own: the nightly pipeline (`autoopt.pipeline.retrain`) records each step as
events, and the policy backtest (`autoopt.backtest`) runs the very same steps on a simulated clock
and caches them by content. One code path decides in both, so a backtest's releases and
refusals are the ones the live service would have made on the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from autoopt.config import Config
from autoopt.pipeline import joinspec
from autoopt.pipeline.dataset import Dataset, make_folds
from autoopt.pipeline.evidence import (
    Evidence,
    LedgerRow,
    cpcv_paths,
    development,
    grid_of,
    holdout_check,
    holdout_split,
    ledger_rows,
    oos_times,
    pbo_of,
    scheme_task,
)
from autoopt.pipeline.selection import FeatureSelection, select_features
from autoopt.plugins.interfaces import (
    Costs,
    Predictor,
    Trainer,
    TrainTask,
    TrialRecord,
    TuneResult,
    ValidationResult,
    Validator,
)
from autoopt.search import as_trainer
from autoopt.validation.gate import GateConfig, GateReason, GateVerdict, evaluate_gate
from autoopt.validation.ledger import effective_trials
from autoopt.validation.live import expected_live

StageFn = Callable[[str], None]


def train_task(
    config: Config, ds: Dataset, *, n_trials: int, time_budget_s: float | None = None,
    storage: str | None = None, **extra: Any,
) -> TrainTask:
    """The trainer's task for a dataset under the pipeline settings (folds, costs, budget)."""
    p = config.pipeline
    return TrainTask(
        symbol=ds.symbol, X=ds.X, y=ds.y, feature_names=ds.feature_names,
        folds=make_folds(ds, p.cv, grid_of(config)), forward_returns=ds.forward_returns,
        periods_per_year=ds.periods_per_year,
        costs=Costs(fee_bps=p.costs.fees_bps, slippage_bps=p.costs.slippage_bps),
        n_trials=n_trials, time_budget_s=time_budget_s, seed=p.seed,
        threads=p.threads, pruning=p.pruning, pruner=p.pruner,
        min_completed_trials=p.min_completed_trials, storage=storage, **extra,
    )


@dataclass(frozen=True)
class Candidate:
    """A tuned and validated challenger: everything the gate and a release need."""

    selection: FeatureSelection
    tuned: TuneResult
    names: list[str]
    study: str
    validation: ValidationResult
    task: TrainTask
    """The task ``validation`` was scored on (the champion is scored on the same one)."""
    selected: Dataset
    """Every row (the holdout's too) with the selected features: what the release is fit on."""
    evidence: Evidence | None = None
    """Holdout, CPCV paths, PBO and this run's ledger rows (`autoopt.pipeline.evidence`)."""


def fit_candidate(
    config: Config,
    ds: Dataset,
    trainer: Trainer,
    validator: Validator,
    *,
    n_trials: int,
    study_of: Callable[[Sequence[str]], str],
    time_budget_s: float | None = None,
    storage: str | None = None,
    on_trial: Callable[[TrialRecord], None] | None = None,
    stage: StageFn | None = None,
    model: str = "",
    join: Mapping[str, Any] | None = None,
    final: Dataset | None = None,
) -> Candidate:
    """Select features, tune and validate (blocking: run it in a thread or a process).

    ``study_of(selected features)`` names the Optuna study (same data and settings, same study,
    so a rerun resumes it). Everything before the final holdout check sees the development rows
    only (`autoopt.pipeline.evidence.development`). ``final``: the rows the release is fit on
    when they are not ``ds`` (with a grid, ``ds`` is built from `evidence_bars` and ``final``
    from every training bar)."""
    p = config.pipeline
    split = holdout_split(config, ds)
    whole, ds = ds, development(config, ds)
    full = train_task(config, ds, n_trials=n_trials, time_budget_s=time_budget_s,
                      storage=storage)
    if p.feature_selection:
        selection = select_features(trainer, full, min_features=p.min_features)
    else:
        selection = FeatureSelection(ds.feature_names, {}, {})
    sel_ds = ds.select(selection.selected)
    study = study_of(selection.selected)
    if stage is not None:
        stage("tuning")
    tune_task = replace(train_task(config, sel_ds, n_trials=n_trials,
                                   time_budget_s=time_budget_s, storage=storage),
                        study_name=study, on_trial=on_trial)
    if join is not None and storage is not None:  # workers may join: record what they need
        tune_task = replace(tune_task, study_attrs=joinspec.complete(
            join, tune_task, selection.selected, config))
    tuned = as_trainer(trainer).tune(tune_task)  # an SDK trainer's search is the core's
    if stage is not None:
        stage("validating")
    names = list(sel_ds.feature_names)
    seed, threads = p.seed, p.threads

    def fit(X: np.ndarray, y: np.ndarray) -> Any:
        return trainer.fit(X, y, tuned.params, names, seed=seed, threads=threads)

    vtask = scheme_task(config, full, ds)
    score = getattr(validator, "score", None)
    if tuned.best_probas is not None and score is not None and _same_folds(vtask, tune_task):
        # the best trial's fold models are the validation's refits: score their predictions
        validation = score(vtask, tuned.best_probas)
    else:
        validation = validator.validate(vtask, fit, ds.columns(names))
    paths: list[float] = []
    if vtask is not full:
        validation, paths = cpcv_paths(config, vtask, validation)
    pbo, pbo_note = pbo_of(config, tuned)
    holdout = None
    if split is not None:
        holdout = holdout_check(whole, split, names, fit, full.costs.fee_bps,
                                full.costs.slippage_bps)
    evidence = Evidence(
        holdout=holdout, holdout_rows=split.size if split else 0, development_rows=ds.n_rows,
        pbo=pbo, pbo_note=pbo_note, path_sharpes=paths,
        ledger=ledger_rows(model, study, tuned, oos_times(ds, full), p.feature_selection))
    return Candidate(selection, tuned, names, study, validation, vtask,
                     (whole if final is None else final).select(names), evidence)


def _same_folds(a: TrainTask, b: TrainTask) -> bool:
    """Whether two tasks cut the same folds from the same rows, test rows ascending (the order
    the search's fold predictions come in)."""
    return len(a.folds) == len(b.folds) and a.X.shape[0] == b.X.shape[0] and all(
        np.array_equal(ta, tb) and np.array_equal(ea, eb) and bool(np.all(np.diff(ea) > 0))
        for (ta, ea), (tb, eb) in zip(a.folds, b.folds, strict=True))


def score_recipe(
    config: Config, trainer: Trainer, validator: Validator, task: TrainTask, ds: Dataset,
    params: dict[str, Any], features: Sequence[str],
) -> ValidationResult:
    """A champion's recorded recipe (params, features) refitted and scored on ``task``'s folds:
    the stored champion was trained on data that includes most test blocks, so predicting with
    it directly would score it in-sample."""
    names = list(features)
    seed, threads = config.pipeline.seed, config.pipeline.threads

    def fit(X: np.ndarray, y: np.ndarray) -> Any:
        return trainer.fit(X, y, dict(params), names, seed=seed, threads=threads)

    return validator.validate(task, fit, ds.columns(names))


def judge(
    config: Config, candidate: Candidate, champion: ValidationResult | None,
    past_ledger: Sequence[LedgerRow] = (),
) -> tuple[GateVerdict, dict[str, float]]:
    """The gate's verdict on the challenger against the champion's scores on the same folds,
    and the metrics a verdict and a release record. ``past_ledger``: the symbol's ledger rows
    recorded before this run (the log's ``training.ledger`` events)."""
    p = config.pipeline
    gate_cfg = GateConfig(margin=p.gate.margin, dsr_threshold=p.gate.dsr_threshold,
                          min_trades=p.gate.min_trades, metric=p.gate.metric,
                          max_pbo=p.gate.max_pbo, holdout_min_sharpe=p.gate.holdout_min_sharpe)
    tuned = candidate.tuned
    ev = candidate.evidence or Evidence()
    ledger = None
    if p.validation.ledger and ev.ledger:
        mine = {r.key for r in ev.ledger}
        rows = [r for r in past_ledger if r.key not in mine] + list(ev.ledger)
        ledger = effective_trials(len(rows), [r.signature for r in rows])
    verdict = evaluate_gate(
        candidate.validation.fold_metrics, champion.fold_metrics if champion else None,
        candidate.validation.returns, tuned.n_trials, config=gate_cfg,
        trial_counts=tuned.trial_counts(), ledger=ledger, pbo=ev.pbo, holdout=ev.holdout,
        path_sharpes=ev.path_sharpes or None,
        champion_returns=champion.returns if champion else None,
        periods_per_year=candidate.task.periods_per_year)
    if ev.pbo is None and ev.pbo_note:
        verdict = GateVerdict(verdict.passed, [*verdict.reasons, GateReason(
            "pbo", "pbo_skipped", True, ev.pbo_note.removeprefix("pbo_skipped: "))], verdict.stats)
    metrics = dict(candidate.validation.metrics)
    metrics["cv_log_loss"] = tuned.best_value
    metrics["n_trials"] = float(tuned.n_trials)
    for k in ("dsr", "psr", "expected_max_sr", "sr_variance", "trials_completed",
              "trials_pruned", "trials_failed"):
        if k in verdict.stats:
            metrics[k] = float(verdict.stats[k])
    for k in ("sr", "n_trials_raw", "n_trials_effective", "trial_clusters", "clusters_sr_variance",
              "pbo", "pbo_prob_loss", "holdout_sr", "holdout_sharpe", "holdout_return",
              "holdout_trades", "holdout_psr", "cpcv_paths", "path_sr_min", "path_sr_median",
              "path_sr_max", "path_sr_share_positive"):
        if k in verdict.stats:
            metrics[f"gate/{k}"] = float(verdict.stats[k])
    if ev.holdout_rows:
        metrics["gate/holdout_rows"] = float(ev.holdout_rows)
        metrics["gate/development_rows"] = float(ev.development_rows)
    for i, sr in enumerate(ev.path_sharpes):
        metrics[f"cpcv_path_sr/{i}"] = float(sr)
    metrics |= expected_live(candidate.validation.returns, verdict.stats.get("n_trades", 0.0))
    return verdict, metrics


def final_model(config: Config, trainer: Trainer, candidate: Candidate) -> Predictor:
    """The release: the tuned recipe fitted on every selected row."""
    p = config.pipeline
    sel = candidate.selected
    return trainer.fit(sel.X, sel.y, candidate.tuned.params, candidate.names,
                       seed=p.seed, threads=p.threads)


__all__ = ["Candidate", "development", "final_model", "fit_candidate", "judge", "score_recipe", "train_task"]
