"""LightGBM trainer plugin: an SDK trainer (`autoopt.plugins.interfaces.ModelTrainer`) whose
search the core runs (`autoopt.search`), with a fast path for the folds.

Why this shape:

* The core owns the study (Optuna TPE seeded, storage, pruner, trial budget across workers,
  time budget), the objective's metrics and the `TuneResult`; this module is the model family:
  `search_space`, `fit`, `predict`, `save`, `load`, and `default_params` (the enqueued first
  trial).
* The fast path (`fold_search`): every trial boosts one model per purged walk-forward fold, all
  in lockstep (`FoldSets`, the fold datasets binned once per search), so the fold-mean
  validation log loss exists at every iteration: early stopping and pruning both act on it
  while the trial is still boosting. The loss is reported every ``report_every`` iterations
  (a report is a storage write, so not every iteration); the core's ``report`` raises when the
  study's pruner says so.
* Deterministic given the seed: ``deterministic=True``, fixed thread count and all LightGBM
  seeds set; the core's sampler is seeded. A time budget cuts the search short and is the one
  thing that can make two runs differ.
* Models are LightGBM's native text format (``model.txt``), loaded from text only.
* Optuna is imported by the search only, and the ``lightgbm`` package by training only: a
  process that loads and predicts with a released model (an engine's `ModelWatcher`) predicts
  through LightGBM's C library (`autoopt.builtins.lgbm_native`: the same code, the same
  numbers) and imports neither.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from autoopt.builtins.lgbm_native import NativeBooster
from autoopt.errors import ArtifactError, ConfigError, DataError
from autoopt.plugins.interfaces import (
    DEFAULT_MIN_COMPLETED_TRIALS,
    FoldsFit,
    Report,
    SearchContext,
    TrainTask,
)

if TYPE_CHECKING:
    import lightgbm
    import optuna


class _LightGBM:
    """The ``lightgbm`` package, imported on first use (training): it brings scipy.sparse,
    pandas and pyarrow with it, which a process that only predicts never needs."""

    def __getattr__(self, name: str) -> Any:
        import lightgbm

        return getattr(lightgbm, name)


lgb: Any = _LightGBM()

MODEL_FILE = "model.txt"
OBJECTIVE = "log_loss"
_METRIC = "binary_logloss"
SMALL_DATA_ROWS = 50_000
"""Below this many rows LightGBM runs single-threaded: thread start-up and OpenMP barriers cost
more than they save on small data, and on a busy machine spinning threads can make a small fit
many times slower."""


def effective_threads(threads: int, n_rows: int) -> int:
    return 1 if n_rows < SMALL_DATA_ROWS else max(1, int(threads))


def base_params(seed: int, threads: int) -> dict[str, Any]:
    """Fixed LightGBM parameters: binary log loss, deterministic, every seed pinned.

    Histogram layout: on one thread row-wise is ~15 % faster on these shapes (a dozen features,
    many rows) and grows the very same trees (checked on random parameters, with bagging and
    fold subsets); on several threads col-wise keeps each feature's sums in row order."""
    return {
        "objective": "binary",
        "metric": _METRIC,
        "verbosity": -1,
        "deterministic": True,
        **({"force_row_wise": True} if int(threads) == 1 else {"force_col_wise": True}),
        "num_threads": int(threads),
        "seed": int(seed),
        "bagging_seed": int(seed),
        "feature_fraction_seed": int(seed),
        "data_random_seed": int(seed),
        "max_bin": 63,
        "feature_pre_filter": False,
    }


def training_set(X: np.ndarray, y: np.ndarray, feature_names: Sequence[str], *, seed: int,
                 threads: int) -> lightgbm.Dataset:
    """Training rows binned on themselves: the one binning `LightGBMTrainer.fit` and the
    search's fold datasets (`FoldSets`) share, which is what makes a fold booster the model a
    refit on the same rows grows (`FoldsFit.refit_equal`)."""
    return lgb.Dataset(np.asarray(X, dtype=np.float64), label=np.asarray(y, dtype=np.float64),
                       feature_name=list(feature_names), params=base_params(seed, threads))


def balance(sizes: Sequence[int], workers: int) -> list[list[int]]:
    """Fold indices per worker so that the most loaded worker has the fewest training rows
    (a tree costs about its rows; walk-forward folds differ in size by up to ~3x). Every
    assignment is tried when there are few (5 folds on 2 workers: 32), else the largest folds
    go first to the least loaded worker. Only the schedule depends on it, never a result."""
    import itertools

    k = len(sizes)
    if workers <= 1 or k <= 1:
        return [list(range(k))]
    if workers**k <= 4096:
        def cost(a: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
            loads = [0] * workers
            for f, w in enumerate(a):
                loads[w] += sizes[f]
            return max(loads), a

        assign = min(itertools.product(range(workers), repeat=k), key=cost)
    else:
        loads = [0] * workers
        slots = [0] * k
        for f in sorted(range(k), key=lambda f: (-sizes[f], f)):
            w = loads.index(min(loads))
            slots[f] = w
            loads[w] += sizes[f]
        assign = tuple(slots)
    groups = [[f for f in range(k) if assign[f] == w] for w in range(workers)]
    return [g for g in groups if g]


def _one_quiet_thread() -> None:
    """A fold worker thread's LightGBM settings. Both the log level and OpenMP's thread count
    are per thread: a thread that only updates boosters made elsewhere would print every
    tree's warnings and start an OpenMP team of all cores for each tree (oversubscribed, and
    row-wise sums then depend on the team). Parsing parameters on the thread sets both."""
    lgb.Dataset(np.zeros((4, 1)), label=np.zeros(4),
                params={"verbosity": -1, "num_threads": 1}).construct()


class FoldSets:
    """A task's CV folds as LightGBM datasets, binned once and shared by every trial.

    ``lgb.cv`` re-cuts its fold subsets on every call, about a second per trial on a year of
    minute bars; here they are built once per search. `run` boosts all folds in lockstep so the
    fold-mean validation log loss exists at every iteration: early stopping and pruning act on
    it while the trial is still boosting.

    Why folds in threads rather than threads in a fold: each fold booster runs on one LightGBM
    thread and ``threads`` worker threads boost different folds at once (the C library releases
    the GIL). A fold's trees are then the same whatever ``threads`` is, and the workers meet
    once per chunk of iterations instead of at LightGBM's OpenMP barriers hundreds of times a
    tree, which on a shared machine (a preempted thread stalls the others at every barrier)
    made two threads slower than one. A chunk never runs past the next report (pruning) nor
    past the first iteration early stopping could stop at, so no tree is wasted.
    """

    def __init__(self, task: TrainTask, threads: int, workers: int | None = None) -> None:
        # Each fold is binned on its own training rows (the test rows take its bin edges), as
        # `LightGBMTrainer.fit` bins them: no test row shapes a bin edge, and a fold's booster
        # at the best iteration is the very model `fit` would grow on those rows, so the
        # validator can score the best trial's predictions instead of refitting (`refit_equal`).
        X = np.asarray(task.X, dtype=np.float64)
        y = np.asarray(task.y, dtype=np.float64)
        self.pairs = []
        for tr, te in task.folds:
            tr, te = np.sort(tr), np.sort(te)
            train = training_set(X[tr], y[tr], task.feature_names, seed=task.seed,
                                 threads=threads).construct()
            valid = lgb.Dataset(X[te], label=y[te], feature_name=list(task.feature_names),
                                params=base_params(task.seed, threads), reference=train)
            self.pairs.append((train, valid.construct()))
        workers = max(1, min(int(threads if workers is None else workers), len(self.pairs)))
        self.groups = balance([len(tr) for tr, _ in task.folds], workers)
        self._pool: Any = None

    def close(self) -> None:
        """Stop the worker threads (the fold datasets stay usable)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _boost(self, boosters: list[lightgbm.Booster], steps: int) -> list[list[float]]:
        """``steps`` iterations of every booster; validation losses [fold][step]."""
        def one(group: list[int]) -> list[tuple[int, list[float]]]:
            out = []
            for k in group:
                b, losses = boosters[k], []
                for _ in range(steps):
                    b.update()
                    losses.append(b.eval_valid()[0][2])
                out.append((k, losses))
            return out

        if len(self.groups) == 1:
            parts = [one(self.groups[0])]
        else:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(len(self.groups), thread_name_prefix="fold",
                                                initializer=_one_quiet_thread)
            parts = list(self._pool.map(one, self.groups))
        losses: list[list[float]] = [[] for _ in boosters]
        for part in parts:
            for k, values in part:
                losses[k] = values
        return losses

    def run(
        self,
        params: dict[str, Any],
        *,
        max_rounds: int,
        patience: int,
        report: Report | None = None,
        report_every: int = 10,
    ) -> tuple[list[float], list[lightgbm.Booster], int]:
        """(fold-mean log loss per iteration, the fold boosters, best iteration).

        Stops ``patience`` iterations after the best one. With ``report`` (the core's pruning
        callback), reports the loss every ``report_every`` iterations; it raises when the
        study's pruner stops the trial.
        """
        params = {k: v for k, v in params.items() if k != "force_col_wise"} | {
            "num_threads": 1, "force_row_wise": True}
        boosters = []
        for train, valid in self.pairs:
            booster = lgb.Booster(params=params, train_set=train)
            booster.add_valid(valid, "valid")
            boosters.append(booster)
        curve: list[float] = []
        best, best_it = math.inf, 0
        it = 0
        while it < max_rounds:
            # early stopping can first stop at best_it + patience; pruning acts at reports
            end = max(it + 1, min(max_rounds, best_it + patience,
                                  (it // report_every + 1) * report_every))
            losses = self._boost(boosters, end - it)
            for step in range(end - it):
                it += 1
                loss = float(np.mean([fold[step] for fold in losses]))
                curve.append(loss)
                if loss < best:
                    best, best_it = loss, it
                elif it - best_it >= patience:
                    return curve, boosters, best_it
            if report is not None and it % report_every == 0:
                report(it, curve[-1])
        return curve, boosters, best_it

    def probas(self, task: TrainTask, boosters: list[lightgbm.Booster],
               best_iteration: int) -> tuple[np.ndarray, ...]:
        """Each fold booster's P(y = 1) on its test rows (ascending), at ``best_iteration``."""
        return tuple(
            booster.predict(task.X[np.sort(test)], num_iteration=best_iteration, num_threads=1)
            for booster, (_, test) in zip(boosters, task.folds, strict=True))


class _LockstepSearch:
    """`FoldSearch` for one task: the folds binned once, every trial boosted in lockstep."""

    def __init__(self, trainer: LightGBMTrainer, task: TrainTask) -> None:
        self.trainer = trainer
        self.task = task
        self.threads = effective_threads(task.threads, task.X.shape[0])
        self.folds = FoldSets(task, self.threads, workers=task.threads)

    def run(self, params: Mapping[str, Any], report: Report | None) -> FoldsFit:
        t = self.trainer
        patience = patience_for(float(params.get("learning_rate", 0.1)),
                                cap=t.early_stopping_rounds, scale=t.early_stopping_scale)
        curve, boosters, best_iteration = self.folds.run(
            base_params(self.task.seed, self.threads) | dict(params), max_rounds=t.max_rounds,
            patience=patience, report=report, report_every=t.report_every)
        return FoldsFit(loss=curve[best_iteration - 1],
                        probas=self.folds.probas(self.task, boosters, best_iteration),
                        user_attrs={"best_iteration": best_iteration}, refit_equal=True)

    def close(self) -> None:
        self.folds.close()


def pruner_steps(report_every: int, reduction_factor: int = 3) -> dict[str, int]:
    """The pruner's settings in boosting rounds (a report every ``report_every`` rounds)."""
    return {"warmup_steps": 2 * report_every, "interval_steps": report_every,
            "min_resource": 2 * report_every, "reduction_factor": int(reduction_factor)}


def make_pruner(
    kind: str, *, enabled: bool, report_every: int,
    min_completed: int = DEFAULT_MIN_COMPLETED_TRIALS, reduction_factor: int = 3,
) -> optuna.pruners.BasePruner:
    """The pruner for a study, in boosting rounds (what the core builds from `pruner_steps`)."""
    from autoopt import tuning

    return tuning.make_pruner(kind, enabled=enabled, min_completed=min_completed,
                              **pruner_steps(report_every, reduction_factor))


def patience_for(learning_rate: float, *, cap: int, scale: float | None,
                 floor: int = 10) -> int:
    """Early stopping's patience for a trial: ``cap`` rounds, or with ``scale`` the rounds
    whose learning rates add up to ``scale`` (``ceil(scale / learning_rate)``), between
    ``floor`` and ``cap``.

    Why scaled: a round moves the model by about its learning rate, so a fixed patience waits
    for far more change at a rate of 0.3 than at 0.01: the fast trials boosted up to 50 rounds
    past their best for nothing, and patience was ~28 % of all tuning rounds."""
    if scale is None:
        return int(cap)
    return int(min(cap, max(min(floor, cap), math.ceil(scale / max(learning_rate, 1e-12)))))


def suggest(trial: optuna.Trial, n_train_min: int) -> dict[str, Any]:
    """The search space. ``min_data_in_leaf`` is capped so the smallest fold can still split."""
    leaf_cap = int(max(10, min(500, n_train_min // 20)))
    params: dict[str, Any] = {
        "num_leaves": trial.suggest_int("num_leaves", 7, 127, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "max_depth": trial.suggest_int("max_depth", 3, 12),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 5, leaf_cap, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "bagging_freq": trial.suggest_int("bagging_freq", 0, 7),
        "lambda_l1": trial.suggest_float("lambda_l1", 1e-8, 10.0, log=True),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-8, 10.0, log=True),
    }
    return params


def _default_trial(n_train_min: int) -> dict[str, Any]:
    leaf_cap = int(max(10, min(500, n_train_min // 20)))
    return {
        "num_leaves": 31, "learning_rate": 0.05, "max_depth": 6,
        "min_data_in_leaf": min(100, leaf_cap), "feature_fraction": 0.9,
        "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l1": 1e-8, "lambda_l2": 1e-3,
    }


class LGBMPredictor:
    """A LightGBM booster behind the `Predictor` interface."""

    def __init__(self, booster: lightgbm.Booster | NativeBooster) -> None:
        self.booster = booster
        self.feature_names = tuple(booster.feature_name())

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise DataError(
                f"LightGBM model expects {len(self.feature_names)} features "
                f"{list(self.feature_names)}, got an array of shape {X.shape}"
            )
        return np.asarray(self.booster.predict(X, num_threads=1), dtype=np.float64)

    def to_text(self) -> str:
        return self.booster.model_to_string()

    def to_files(self) -> dict[str, bytes]:
        return {MODEL_FILE: self.to_text().encode("utf-8")}

    def importance(self, kind: str = "gain") -> dict[str, float]:
        if kind not in ("gain", "split"):
            raise ConfigError(f"importance kind must be 'gain' or 'split', got {kind!r}")
        values = self.booster.feature_importance(importance_type=kind)
        return {n: float(v) for n, v in zip(self.feature_names, values, strict=True)}

    @classmethod
    def from_text(cls, text: str) -> LGBMPredictor:
        """A released model, for prediction (through the C library: no ``lightgbm`` import)."""
        try:
            return cls(NativeBooster(text))
        except ArtifactError as exc:
            raise ArtifactError(f"not a LightGBM text model: {exc}") from exc




class LightGBMTrainer:
    """LightGBM binary classifiers through the trainer SDK; see the module docstring."""

    name = "lgbm"
    model_type = "lightgbm"
    parallel_folds = True
    """Fits release the GIL and run on the threads they are given: callers may fit folds side
    by side, one thread each (`autoopt.pipeline.selection`)."""

    def __init__(
        self,
        *,
        max_rounds: int = 1000,
        early_stopping_rounds: int = 50,
        report_every: int = 10,
        early_stopping_scale: float | None = 1.0,
        reduction_factor: int = 3,
    ) -> None:
        """``early_stopping_rounds``: the patience, or its cap with ``early_stopping_scale``
        (`patience_for`); ``reduction_factor``: the successive-halving / hyperband pruner's."""
        self.max_rounds = max_rounds
        self.early_stopping_rounds = early_stopping_rounds
        self.report_every = report_every
        self.early_stopping_scale = early_stopping_scale
        self.reduction_factor = reduction_factor

    # ------------------------------------------------------------------ the search (SDK)

    def search_space(self, trial: optuna.Trial, ctx: SearchContext) -> dict[str, Any]:
        return suggest(trial, ctx.n_train_min)

    def fold_search(self, task: TrainTask) -> _LockstepSearch:
        """The fast path the core uses: all folds of a trial boosted in lockstep."""
        return _LockstepSearch(self, task)

    def pruner_steps(self) -> dict[str, int]:
        return pruner_steps(self.report_every, self.reduction_factor)

    def final_params(self, params: Mapping[str, Any],
                     user_attrs: Mapping[str, Any]) -> dict[str, Any]:
        """The best trial's recipe: its parameters and the rounds early stopping chose."""
        return dict(params) | {"num_boost_round": int(user_attrs["best_iteration"])}

    @property
    def fit_errors(self) -> tuple[type[BaseException], ...]:
        """Errors that fail one trial (recorded) rather than the search."""
        return (lgb.basic.LightGBMError,)

    # ------------------------------------------------------------------ fit / load

    def default_params(self, n_train: int) -> dict[str, Any]:
        """The enqueued first trial's parameters and 100 rounds: a sane untuned model."""
        return _default_trial(n_train) | {"num_boost_round": 100}

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
    ) -> LGBMPredictor:
        """One booster with fixed params; ``num_boost_round`` comes from ``params``. (The
        search fits through `fold_search`, so ``valid`` and ``report`` are not used here.)"""
        del valid, report
        p = dict(params)
        rounds = int(p.pop("num_boost_round", 100))
        if rounds < 1:
            raise ConfigError(f"LightGBMTrainer.fit: num_boost_round must be >= 1, got {rounds}")
        y = np.asarray(y)
        if np.unique(y).size < 2:
            raise DataError("LightGBMTrainer.fit: training labels hold one class only")
        threads = effective_threads(threads, len(y))
        data = training_set(X, y, feature_names, seed=seed, threads=threads)
        booster = lgb.train(base_params(seed, threads) | p, data, num_boost_round=rounds)
        return LGBMPredictor(booster)

    def predict(self, model: LGBMPredictor, X: np.ndarray) -> np.ndarray:
        return model.predict_proba(X)

    def save(self, model: LGBMPredictor) -> dict[str, bytes]:
        return model.to_files()

    def importance(self, model: LGBMPredictor, kind: str = "gain") -> dict[str, float]:
        return model.importance(kind)

    def load(self, files: Mapping[str, bytes]) -> LGBMPredictor:
        if MODEL_FILE not in files:
            raise ArtifactError(f"LightGBM artifact has no {MODEL_FILE!r}; files: {sorted(files)}")
        return LGBMPredictor.from_text(files[MODEL_FILE].decode("utf-8"))
