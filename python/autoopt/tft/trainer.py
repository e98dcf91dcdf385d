"""TFT trainer on the trainer SDK (`ModelTrainer`): autoopt's core (`autoopt.search`) owns the
study, the metrics, the budgets and the pruner; this module says what a TFT trial is.

Same contract and shape as the LightGBM trainer, so the pipeline, the validator and the gate
treat both alike:

* The search space (`SearchSpace`) is the architecture and the learning rate; the core enqueues
  `default_params` as the first trial (its epochs are not part of the search).
* The fast path (`fold_search`, kept because today's semantics need it): every trial trains one
  network per fold, all folds in lockstep one epoch at a time; after each epoch the fold-mean
  validation log loss (on each fold's test rows, windows taken within the test block with the
  rows before it as context, exactly as the validator will) is passed to the core's ``report``,
  whose pruner may stop the trial there. Early stopping keeps the best epoch of the fold mean;
  ``best_epoch`` is a trial user attribute and the released recipe's ``epochs``
  (`final_params`). The per-fold generic path could not do this: one fold's ``fit`` cannot
  early-stop on the mean over folds, and it would predict each test block without the rows
  before it.
* ``fit(..., valid=, report=)`` on its own (any caller of the SDK) reports the validation loss
  per epoch, stops after ``patience`` epochs without improvement and returns the best epoch's
  network; without ``valid`` it trains ``params["epochs"]`` epochs (the release, the validator).
* The time budget stops the search (the core) and also ends a running trial after its current
  epoch, keeping the best epoch so far (``stopped_by_time_budget``).
* CPU by default, CUDA when available (``device="auto"``); deterministic on CPU (see
  `autoopt.tft.training`). Models are safetensors + JSON (see `autoopt.tft.predictor`): `save`
  and `load` use that format, never a pickle.
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
from autoopt.plugins.interfaces import (
    FoldsFit,
    Report,
    SearchContext,
    TrainTask,
    predict_rows,
)
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
from autoopt.validation.metrics import log_loss

OBJECTIVE = "log_loss"
PRUNERS = tuning.PRUNERS
MIN_IMPROVEMENT = 1e-7
"""A validation loss counts as better only when it is lower by more than this."""


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


def pruner_steps(max_epochs: int) -> dict[str, int]:
    """The pruner's settings in epochs (one report per epoch, none pruned before epoch 2)."""
    return {"warmup_steps": 1, "interval_steps": 1, "min_resource": 2,
            "max_resource": max_epochs}


def make_pruner(
    kind: str, *, enabled: bool, max_epochs: int,
    min_completed: int = tuning.DEFAULT_MIN_COMPLETED_TRIALS,
) -> optuna.pruners.BasePruner:
    """The pruner for a study, in epochs (what the core builds from `pruner_steps`);
    ``NopPruner`` when pruning is off."""
    return tuning.make_pruner(kind, enabled=enabled, min_completed=min_completed,
                              **pruner_steps(max_epochs))


class _LockstepSearch:
    """`FoldSearch` for one task: each trial's fold networks trained one epoch at a time
    together, early-stopped and pruned on the fold-mean validation loss."""

    def __init__(self, trainer: TFTTrainer, task: TrainTask) -> None:
        self.trainer = trainer
        self.task = task
        self.X = check_matrix(task.X, len(task.feature_names), f"{task.symbol}: TFT tuning")
        self.y = np.asarray(task.y)
        for k, (train, _) in enumerate(task.folds):
            check_labels(self.y[train], len(train), f"{task.symbol}: fold {k}")
        self.device = resolve_device(trainer.device)
        self.deadline = (time.monotonic() + task.time_budget_s
                         if task.time_budget_s is not None else math.inf)

    def run(self, params: Mapping[str, Any], report: Report | None) -> FoldsFit:
        t, task = self.trainer, self.task
        hyper = Hyper.from_params(dict(params) | {"epochs": t.max_epochs,
                                                  "batch_size": t.batch_size})
        with torch_settings(task.threads, self.device):
            return self._run(hyper, report)

    def _run(self, hyper: Hyper, report: Report | None) -> FoldsFit:
        t, task, X, y = self.trainer, self.task, self.X, self.y
        nets = [Network(X[train], y[train], hyper, task.seed, self.device)
                for train, _ in task.folds]
        tests = [np.sort(test) for _, test in task.folds]
        best_loss, best_epoch = math.inf, 0
        best_proba: tuple[np.ndarray, ...] = ()
        attrs: dict[str, Any] = {}
        stale = 0
        for epoch in range(1, t.max_epochs + 1):
            for net in nets:
                net.epoch()
            # each fold's first test rows get the rows before the block as context, as the
            # validator gives them (`predict_rows`)
            probas = tuple(predict_rows(net.predict, hyper.input_size, X, rows)
                           for net, rows in zip(nets, tests, strict=True))
            loss = float(np.mean([log_loss(y[rows], p)
                                  for p, rows in zip(probas, tests, strict=True)]))
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"{task.symbol}: TFT validation loss {loss} at epoch {epoch} "
                    f"(learning_rate {hyper.learning_rate:.3g})")
            if loss < best_loss - MIN_IMPROVEMENT:
                best_loss, best_epoch, best_proba, stale = loss, epoch, probas, 0
            else:
                stale += 1
            if report is not None:
                report(epoch, loss)  # the core's pruner may raise here: let it propagate
            if stale >= t.patience:
                break
            if time.monotonic() > self.deadline:
                attrs["stopped_by_time_budget"] = epoch
                break
        return FoldsFit(loss=best_loss, probas=best_proba,
                        user_attrs={"best_epoch": best_epoch} | attrs)

    def close(self) -> None:
        pass


class TFTTrainer:
    """Temporal Fusion Transformer classifiers through the trainer SDK; see the module
    docstring."""

    name = "tft"
    model_type = "tft"
    fit_errors: tuple[type[BaseException], ...] = (TrainingDiverged,)
    """A diverged trial fails (recorded) instead of ending the search."""

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

    @property
    def max_steps(self) -> int:
        """The most epochs one ``fit`` reports (the core's step span per fold)."""
        return self.max_epochs + 1

    # ------------------------------------------------------------------ the search (SDK)

    def search_space(self, trial: optuna.Trial, ctx: SearchContext) -> dict[str, Any]:
        del ctx
        return self.search.suggest(trial)

    def fold_search(self, task: TrainTask) -> _LockstepSearch:
        """The path the core uses: all folds of a trial trained in lockstep, early-stopped
        and pruned on the fold-mean validation loss."""
        return _LockstepSearch(self, task)

    def pruner_steps(self) -> dict[str, int]:
        return pruner_steps(self.max_epochs)

    def final_params(self, params: Mapping[str, Any],
                     user_attrs: Mapping[str, Any]) -> dict[str, Any]:
        """The best trial's recipe: its architecture, trained for the epoch early stopping
        kept on the fold mean (``best_epoch``, recorded by `fold_search`). Without the fast
        path each fold stopped on its own and no one epoch was recorded: `max_epochs`."""
        epochs = int(user_attrs.get("best_epoch", params.get("epochs", self.max_epochs)))
        return Hyper.from_params(dict(params) | {"epochs": epochs,
                                                 "batch_size": self.batch_size}).as_params()

    def default_params(self, n_train: int) -> dict[str, Any]:
        """The enqueued first trial's architecture, trained for `Hyper`'s default epochs."""
        del n_train
        return Hyper(**self.search.default(), batch_size=self.batch_size).as_params()

    # ------------------------------------------------------------------ fit / predict / files

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        params: Mapping[str, Any],
        feature_names: Sequence[str],
        *,
        seed: int = 42,
        threads: int = 1,
        valid: tuple[np.ndarray, np.ndarray] | None = None,
        report: Report | None = None,
    ) -> TFTPredictor:
        """One network with ``params``. Without ``valid``: trained for ``params["epochs"]``
        epochs. With ``valid`` (rows after the training rows): at most that many epochs
        (`max_epochs` when ``params`` has none), the validation log loss passed to ``report`` after
        each, stopped after `patience` epochs without improvement; the best epoch's network is
        returned. ``valid``'s first ``input_size - 1`` rows are windowed within ``valid`` alone
        (zero history), unlike `fold_search`, which gives them the rows before."""
        p = dict(params)
        if valid is not None and "epochs" not in p:
            p["epochs"] = self.max_epochs
        hyper = Hyper.from_params(p)
        names = tuple(feature_names)
        X = check_matrix(X, len(names), "TFTTrainer.fit")
        y = check_labels(y, X.shape[0], "TFTTrainer.fit")
        if valid is not None:
            Xv = check_matrix(valid[0], len(names), "TFTTrainer.fit valid")
            yv = np.asarray(valid[1])
            if yv.shape != (Xv.shape[0],):
                raise DataError(f"TFTTrainer.fit: valid labels have shape {yv.shape}, "
                                f"expected ({Xv.shape[0]},)")
        device = resolve_device(self.device)
        with torch_settings(threads, device):
            net = Network(X, y, hyper, seed, device)
            epochs = hyper.epochs
            if valid is None:
                for _ in range(hyper.epochs):
                    loss = net.epoch()
                    if not math.isfinite(loss):
                        raise TrainingDiverged(f"TFTTrainer.fit: training loss became {loss}")
            else:
                epochs = self._fit_early_stopped(net, hyper, Xv, yv, report)
            gain, split = selection_importance(net.model, net.scaler, X, device)
        training = {"learning_rate": hyper.learning_rate, "epochs": epochs,
                    "batch_size": hyper.batch_size, "seed": int(seed), "threads": int(threads),
                    "n_rows": int(X.shape[0]), "device": device.type}
        config = artifact_config(names, hyper.as_params(), training, gain, split)
        return TFTPredictor(net.model, net.scaler, names, config)

    def _fit_early_stopped(self, net: Network, hyper: Hyper, Xv: np.ndarray, yv: np.ndarray,
                           report: Report | None) -> int:
        """Train ``net`` up to ``hyper.epochs`` epochs on the validation loss; leaves the best
        epoch's weights in it and returns that epoch."""
        best_loss, best_epoch, best_state, stale = math.inf, 0, None, 0
        for epoch in range(1, hyper.epochs + 1):
            net.epoch()
            loss = log_loss(yv, net.predict(Xv))
            if not math.isfinite(loss):
                raise TrainingDiverged(f"TFTTrainer.fit: validation loss {loss} at epoch "
                                       f"{epoch} (learning_rate {hyper.learning_rate:.3g})")
            if loss < best_loss - MIN_IMPROVEMENT:
                best_loss, best_epoch, stale = loss, epoch, 0
                best_state = {k: v.detach().clone() for k, v in net.model.state_dict().items()}
            else:
                stale += 1
            if report is not None:
                report(epoch, loss)  # the core's pruner may raise here: let it propagate
            if stale >= self.patience:
                break
        if best_state is not None:
            net.model.load_state_dict(best_state)
        return best_epoch

    def predict(self, model: TFTPredictor, X: np.ndarray) -> np.ndarray:
        """P(y = 1) per row; row t's window ends at row t of ``X`` (see `TFTPredictor`)."""
        return model.predict_proba(X)

    def save(self, model: TFTPredictor) -> dict[str, bytes]:
        """``model.safetensors`` and ``config.json`` (`autoopt.tft.predictor`)."""
        return model.to_files()

    def load(self, files: Mapping[str, bytes]) -> TFTPredictor:
        return TFTPredictor.from_files(files)

    def importance(self, model: TFTPredictor, kind: str = "gain") -> dict[str, float]:
        return model.importance(kind)


__all__ = ["OBJECTIVE", "PRUNERS", "SearchSpace", "TFTTrainer", "TrainingDiverged", "make_pruner",
           "pruner_steps"]
