"""TFT trainer: Optuna TPE search on the task's purged folds, pruned per epoch on validation loss.

Same contract and shape as the LightGBM trainer, so the pipeline, the validator and the gate
treat both alike:

* Every trial trains one network per fold, all folds in lockstep one epoch at a time; after
  each epoch the fold-mean validation log loss (on each fold's test rows, windows taken within
  the test block exactly as the validator will) is reported to the trial, and the pruner may
  stop it there. Early stopping keeps the best epoch; ``epochs`` in the result is that epoch.
* Studies live in the task's RDB storage (resumed with ``load_if_exists``), TPE is seeded and
  a first trial of sane defaults is enqueued. Every finished trial becomes a `TrialRecord` with
  its out-of-sample per-period Sharpe ratio in ``user_attrs["sharpe_per_period"]``.
* The time budget stops the search (Optuna's timeout) and also ends a running trial after its
  current epoch, keeping the best epoch so far.
* CPU by default, CUDA when available (``device="auto"``); deterministic on CPU (see
  `autoopt.tft.training`). Models are safetensors + JSON (see `autoopt.tft.predictor`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna

from autoopt import tuning
from autoopt.errors import ConfigError, DataError
from autoopt.plugins.interfaces import TrainTask, TuneResult, predict_rows
from autoopt.tft.predictor import TFTPredictor, artifact_config
from autoopt.tft.training import (
    Hyper,
    Network,
    check_labels,
    resolve_device,
    selection_importance,
    torch_settings,
)
from autoopt.tft.windows import check_matrix
from autoopt.validation.metrics import (
    log_loss,
    positions_from_proba,
    sharpe_ratio,
    strategy_returns,
)

OBJECTIVE = "log_loss"
PRUNERS = tuning.PRUNERS


class TrainingDiverged(DataError):
    """A trial's loss became NaN/inf (e.g. a learning rate far too high): the trial fails."""


@dataclass(frozen=True, kw_only=True)
class SearchSpace:
    """What Optuna tunes. Every head count must divide every hidden size."""

    hidden_sizes: tuple[int, ...] = (8, 16, 32, 64)
    attention_heads: tuple[int, ...] = (1, 2, 4)
    dropout: tuple[float, float] = (0.0, 0.3)
    learning_rate: tuple[float, float] = (3e-4, 1e-2)
    input_sizes: tuple[int, ...] = (8, 16, 32)

    def __post_init__(self) -> None:
        if not self.hidden_sizes or not self.attention_heads or not self.input_sizes:
            raise ConfigError("TFT SearchSpace: hidden_sizes, attention_heads and input_sizes "
                              "need at least one value each")
        bad = [(d, h) for d in self.hidden_sizes for h in self.attention_heads if d % h]
        if bad:
            raise ConfigError(f"TFT SearchSpace: hidden sizes not divisible by head counts: {bad}")
        lo, hi = self.dropout
        if not 0.0 <= lo <= hi < 1.0:
            raise ConfigError(f"TFT SearchSpace: dropout range {self.dropout} not within [0, 1)")
        lo, hi = self.learning_rate
        if not 0.0 < lo <= hi:
            raise ConfigError(f"TFT SearchSpace: learning_rate range {self.learning_rate} invalid")

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return {
            "hidden_size": trial.suggest_categorical("hidden_size", list(self.hidden_sizes)),
            "attention_heads": trial.suggest_categorical(
                "attention_heads", list(self.attention_heads)),
            "dropout": trial.suggest_float("dropout", *self.dropout),
            "learning_rate": trial.suggest_float("learning_rate", *self.learning_rate, log=True),
            "input_size": trial.suggest_categorical("input_size", list(self.input_sizes)),
        }

    def default(self) -> dict[str, Any]:
        """`Hyper`'s defaults, moved into the space where they fall outside it."""
        h = Hyper()

        def pick(value: int, choices: tuple[int, ...]) -> int:
            return value if value in choices else min(choices, key=lambda c: (abs(c - value), c))

        return {
            "hidden_size": pick(h.hidden_size, self.hidden_sizes),
            "attention_heads": pick(h.attention_heads, self.attention_heads),
            "dropout": min(max(h.dropout, self.dropout[0]), self.dropout[1]),
            "learning_rate": min(max(h.learning_rate, self.learning_rate[0]),
                                 self.learning_rate[1]),
            "input_size": pick(h.input_size, self.input_sizes),
        }


def make_pruner(
    kind: str, *, enabled: bool, max_epochs: int,
    min_completed: int = tuning.DEFAULT_MIN_COMPLETED_TRIALS,
) -> optuna.pruners.BasePruner:
    """The pruner for a study (steps are epochs); ``NopPruner`` when pruning is off."""
    return tuning.make_pruner(
        kind, enabled=enabled, warmup_steps=1, interval_steps=1, min_resource=2,
        max_resource=max_epochs, min_completed=min_completed,
    )




class TFTTrainer:
    """Tunes, fits and loads Temporal Fusion Transformer classifiers; see the module docstring."""

    name = "tft"
    model_type = "tft"

    def __init__(
        self,
        *,
        search: SearchSpace | None = None,
        max_epochs: int = 20,
        patience: int = 3,
        batch_size: int = 256,
        device: str = "auto",
    ) -> None:
        if max_epochs < 1 or patience < 1 or batch_size < 1:
            raise ConfigError(
                f"TFTTrainer: max_epochs ({max_epochs}), patience ({patience}) and batch_size "
                f"({batch_size}) must be >= 1"
            )
        self.search = search or SearchSpace()
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.device = device

    # ------------------------------------------------------------------ tuning

    def study(self, task: TrainTask) -> optuna.Study:
        """Create or resume the task's study (TPE seeded with the task's seed)."""
        pruner = make_pruner(task.pruner, enabled=task.pruning, max_epochs=self.max_epochs,
                             min_completed=task.min_completed_trials)
        return tuning.open_study(task, pruner, "TFTTrainer")

    def tune(self, task: TrainTask) -> TuneResult:
        X = check_matrix(task.X, len(task.feature_names), f"{task.symbol}: TFT tuning")
        y = np.asarray(task.y)
        for k, (train, _) in enumerate(task.folds):
            check_labels(y[train], len(train), f"{task.symbol}: fold {k}")
        device = resolve_device(self.device)
        study = self.study(task)
        done = tuning.finished_trials(study)
        if not done:
            study.enqueue_trial(self.search.default())
        remaining = task.n_trials - len(done)
        deadline = (time.monotonic() + task.time_budget_s
                    if task.time_budget_s is not None else math.inf)

        def objective(trial: optuna.Trial) -> float:
            hyper = Hyper(**self.search.suggest(trial), epochs=self.max_epochs,
                          batch_size=self.batch_size)
            with torch_settings(task.threads, device):
                return self._run_trial(trial, task, X, y, hyper, device, deadline)

        def report(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
            del study
            if task.on_trial is not None:
                task.on_trial(tuning.trial_record(frozen))

        if remaining > 0:
            study.optimize(
                objective,
                n_trials=remaining,
                timeout=task.time_budget_s,
                callbacks=[report],
                catch=(TrainingDiverged,),
                gc_after_trial=False,
            )
        trials = tuning.finished_trials(study)
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            raise DataError(
                f"{task.symbol}: no TFT trial of study {study.study_name!r} completed "
                f"({len(trials)} tried)"
            )
        best = min(complete, key=lambda t: (t.value, t.number))
        params = Hyper(**best.params, epochs=int(best.user_attrs["best_epoch"]),
                       batch_size=self.batch_size).as_params()
        return TuneResult(
            study_name=study.study_name,
            params=params,
            best_value=float(best.value),  # type: ignore[arg-type]
            best_trial=best.number,
            trials=tuple(tuning.trial_record(t) for t in sorted(trials, key=lambda t: t.number)),
            objective=OBJECTIVE,
        )

    def _run_trial(
        self,
        trial: optuna.Trial,
        task: TrainTask,
        X: np.ndarray,
        y: np.ndarray,
        hyper: Hyper,
        device: Any,
        deadline: float,
    ) -> float:
        nets = [Network(X[train], y[train], hyper, task.seed, device) for train, _ in task.folds]
        tests = [(test, y[test]) for _, test in task.folds]
        best_loss, best_epoch, best_proba = math.inf, 0, [np.empty(0)] * len(nets)
        stale = 0
        for epoch in range(1, self.max_epochs + 1):
            for net in nets:
                net.epoch()
            # each fold's first test rows get the rows before the block as context, as the
            # validator gives them (`predict_rows`)
            probas = [predict_rows(net.predict, hyper.input_size, X, rows)
                      for net, (rows, _) in zip(nets, tests, strict=True)]
            loss = float(np.mean([log_loss(yt, p)
                                  for p, (_, yt) in zip(probas, tests, strict=True)]))
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"{task.symbol}: TFT trial {trial.number} validation loss {loss} at epoch "
                    f"{epoch} (learning_rate {hyper.learning_rate:.3g})")
            if loss < best_loss - 1e-7:
                best_loss, best_epoch, best_proba, stale = loss, epoch, probas, 0
            else:
                stale += 1
            trial.report(loss, step=epoch)
            if task.pruning and trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}: log_loss={loss:.5f}")
            if stale >= self.patience:
                break
            if time.monotonic() > deadline:
                trial.set_user_attr("stopped_by_time_budget", epoch)
                break
        sr, sr_annual, n_trades = self._sharpe(task, best_proba)
        trial.set_user_attr("best_epoch", best_epoch)
        trial.set_user_attr("sharpe_per_period", sr)
        trial.set_user_attr("sharpe", sr_annual)
        trial.set_user_attr("n_trades", n_trades)
        return best_loss

    @staticmethod
    def _sharpe(task: TrainTask, probas: Sequence[np.ndarray]) -> tuple[float, float, int]:
        """(per-period Sharpe, annualised Sharpe, trades) of the trial's out-of-sample signals."""
        parts = []
        n_trades = 0
        for proba, (_, test) in zip(probas, task.folds, strict=True):
            pos = positions_from_proba(proba)
            n_trades += int(np.count_nonzero(np.diff(pos, prepend=0.0)))
            parts.append(strategy_returns(pos, task.forward_returns[test],
                                          task.costs.fee_bps, task.costs.slippage_bps))
        r = np.concatenate(parts)
        return sharpe_ratio(r), sharpe_ratio(r, task.periods_per_year), n_trades

    # ------------------------------------------------------------------ fit / load

    def default_params(self, n_train: int) -> dict[str, Any]:
        """The enqueued first trial's architecture, trained for `Hyper`'s default epochs."""
        del n_train
        return Hyper(**self.search.default(), batch_size=self.batch_size).as_params()

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        params: Mapping[str, Any],
        feature_names: Sequence[str],
        *,
        seed: int = 42,
        threads: int = 1,
    ) -> TFTPredictor:
        """One network with fixed params, trained for ``params["epochs"]`` epochs."""
        hyper = Hyper.from_params(params)
        names = tuple(feature_names)
        X = check_matrix(X, len(names), "TFTTrainer.fit")
        y = check_labels(y, X.shape[0], "TFTTrainer.fit")
        device = resolve_device(self.device)
        with torch_settings(threads, device):
            net = Network(X, y, hyper, seed, device)
            for _ in range(hyper.epochs):
                loss = net.epoch()
                if not math.isfinite(loss):
                    raise TrainingDiverged(f"TFTTrainer.fit: training loss became {loss}")
            gain, split = selection_importance(net.model, net.scaler, X, device)
        training = {"learning_rate": hyper.learning_rate, "epochs": hyper.epochs,
                    "batch_size": hyper.batch_size, "seed": int(seed), "threads": int(threads),
                    "n_rows": int(X.shape[0]), "device": device.type}
        config = artifact_config(names, hyper.as_params(), training, gain, split)
        return TFTPredictor(net.model, net.scaler, names, config)

    def load(self, files: Mapping[str, bytes]) -> TFTPredictor:
        return TFTPredictor.from_files(files)


__all__ = ["OBJECTIVE", "PRUNERS", "SearchSpace", "TFTTrainer", "TrainingDiverged", "make_pruner"]
