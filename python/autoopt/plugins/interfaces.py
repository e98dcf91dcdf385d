"""Small interfaces that plugin components implement (structural: no base class needed).

Kept deliberately narrow, like Optuna's samplers and storages: autoopt's pipeline talks to
components only through these methods and the plain data records below, so a third-party
component is a drop-in.

Data flow of one retrain (see `autoopt.pipeline`)::

    DataSource.load ─▶ bars ─▶ validate ─▶ FeatureSet.compute ─▶ labels ─▶ TrainTask
    core search (autoopt.search) over ModelTrainer.search_space/fit/predict ─▶ TuneResult
    ─▶ ModelTrainer.fit(...) ─▶ model ─▶ save/load (the registry), predict (watchers)
    Validator.validate(TrainTask, fit) ─▶ ValidationResult ─▶ gate ─▶ registry

Arrays are numpy: ``X`` is ``(n_rows, n_features)`` float64 with NaN for "unknown", ``y`` is
0/1 int8 ("the label is positive"), indices are int64 row positions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # annotations only: trainers need not import polars
    import polars as pl

# ------------------------------------------------------------------------------- data sources


@runtime_checkable
class DataSource(Protocol):
    """Loads OHLCV bars for symbols from the URI scheme it owns."""

    name: str
    scheme: str

    def load(self, uri: str, symbols: Sequence[str] | None = None) -> dict[str, pl.DataFrame]:
        """Bars per symbol with columns ts (UTC ns, Int64), open, high, low, close, volume."""
        ...


@runtime_checkable
class IncrementalSource(DataSource, Protocol):
    """A source that can fetch only the bars after a point (exchanges): resumable ingestion."""

    def load_since(
        self, uri: str, symbols: Sequence[str] | None, since: Mapping[str, int]
    ) -> dict[str, pl.DataFrame]:
        """Like `load`, but only bars with ``ts >= since[symbol]`` (all bars when absent)."""
        ...

    def timeframe(self, uri: str) -> str:
        """The bar timeframe the URI asks for (``"1m"``, ``"1h"``...)."""
        ...


@runtime_checkable
class LogSource(DataSource, Protocol):
    """A source that reads from the event log itself (bars ingested earlier)."""

    async def aload(
        self, uri: str, symbols: Sequence[str] | None, log: Any
    ) -> dict[str, pl.DataFrame]:
        """Like `load`, on an open `autoopt.log.EventLog`, from inside a running event loop."""
        ...


# ------------------------------------------------------------------------------- features


@runtime_checkable
class FeatureSet(Protocol):
    """Turns a symbol's bars into features whose row t uses only bars 0..t (no look-ahead)."""

    name: str
    version: str

    def columns(self) -> list[str]:
        """Names of the feature columns `compute` returns, in order."""
        ...

    def warmup(self) -> int:
        """Rows at the start whose features are incomplete (NaN) and must not be trained on."""
        ...

    def compute(self, bars: pl.DataFrame) -> pl.DataFrame:
        """Float64 feature columns aligned row-for-row with ``bars`` (same height, no ts)."""
        ...


# ------------------------------------------------------------------------------- training


DEFAULT_MIN_COMPLETED_TRIALS = 4
"""Trials that must run to completion before any pruner may stop one (the default of
`TrainTask.min_completed_trials` and ``pipeline.min_completed_trials``): the gate selects among
completed trials, and a pruner that stops most trials early must never leave it too few."""


@dataclass(frozen=True, kw_only=True)
class Costs:
    """Trading costs charged per unit of turnover, in basis points."""

    fee_bps: float = 0.0
    slippage_bps: float = 0.0


@dataclass(frozen=True, kw_only=True)
class TrialRecord:
    """One finished hyperparameter trial (what a `TrialCompleted` event carries)."""

    number: int
    state: str
    """Optuna's state name: ``COMPLETE``, ``PRUNED`` or ``FAIL``."""
    params: dict[str, Any]
    value: float | None
    duration_s: float
    user_attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class TrainTask:
    """Everything a trainer needs to tune one model for one symbol.

    ``folds`` are purged walk-forward (train_idx, test_idx) pairs over the rows of ``X``; the
    trainer scores every trial on exactly these folds. ``forward_returns[t]`` is what a position
    held from row t to row t+1 earns (before costs); trainers use it for per-trial Sharpe ratios.
    """

    symbol: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    folds: tuple[tuple[np.ndarray, np.ndarray], ...]
    forward_returns: np.ndarray
    periods_per_year: float
    costs: Costs = field(default_factory=Costs)
    n_trials: int = 32
    time_budget_s: float | None = None
    seed: int = 42
    threads: int = 1
    pruning: bool = True
    pruner: str = "successive_halving"
    """Which pruner when pruning: ``successive_halving``, ``median`` or ``hyperband``."""
    min_completed_trials: int = DEFAULT_MIN_COMPLETED_TRIALS
    """Trials that run to completion before the pruner may stop any (`autoopt.tuning`)."""
    storage: str | None = None
    """SQLAlchemy URL of the Optuna storage (None: in memory, nothing resumes)."""
    study_name: str = ""
    study_attrs: Mapping[str, Any] | None = None
    """Recorded in a persistent study's user attributes by the core search: what a worker
    (`autoopt worker --study`) needs to rebuild this very task (`autoopt.pipeline.joinspec`)."""
    on_trial: Callable[[TrialRecord], None] | None = None
    """Called from the tuning thread after every trial this process runs, in trial order; then
    (the core's search) once for each trial other workers ran during the search."""

    def __post_init__(self) -> None:
        from autoopt.errors import DataError

        n = self.X.shape[0]
        if self.X.ndim != 2 or self.X.shape[1] != len(self.feature_names):
            raise DataError(
                f"TrainTask {self.symbol}: X has shape {self.X.shape} for "
                f"{len(self.feature_names)} feature names"
            )
        for name in ("y", "forward_returns"):
            if getattr(self, name).shape != (n,):
                raise DataError(
                    f"TrainTask {self.symbol}: {name} has shape {getattr(self, name).shape}, "
                    f"expected ({n},)"
                )
        if not self.folds:
            raise DataError(f"TrainTask {self.symbol}: no CV folds")


@dataclass(frozen=True, kw_only=True)
class TuneResult:
    """The outcome of a search: the best parameters and every trial tried (resumed ones too)."""

    study_name: str
    params: dict[str, Any]
    """Best trial's parameters, complete enough for `Trainer.fit` (incl. the boosting rounds)."""
    best_value: float
    best_trial: int
    trials: tuple[TrialRecord, ...]
    objective: str
    """Name of the minimised objective, e.g. ``"log_loss"``."""
    trial_returns: dict[int, np.ndarray] = field(default_factory=dict)
    """Trial number -> that completed trial's out-of-sample per-period net returns on the
    task's folds, concatenated (for PBO and the trial ledger); trials resumed from storage and
    trainers that do not record them have none."""
    best_probas: tuple[np.ndarray, ...] | None = None
    """The best trial's P(y = 1) on each fold's test rows (rows ascending) when this search ran
    it and its folds' fits are the validation's refits (`FoldsFit.refit_equal`); else None."""

    @property
    def n_trials(self) -> int:
        """Trials started, pruned and failed ones included (the N of the Deflated Sharpe Ratio)."""
        return len(self.trials)

    def trial_counts(self) -> dict[str, int]:
        """Trials ``started`` (= `n_trials`), ``completed``, ``pruned`` and ``failed``."""
        return {
            "started": len(self.trials),
            "completed": sum(1 for t in self.trials if t.state == "COMPLETE"),
            "pruned": sum(1 for t in self.trials if t.state == "PRUNED"),
            "failed": sum(1 for t in self.trials if t.state == "FAIL"),
        }

    def trial_sharpes(self) -> list[float]:
        """Per-period out-of-sample Sharpe ratio of every completed trial that recorded one."""
        return [
            float(t.user_attrs["sharpe_per_period"])
            for t in self.trials
            if t.state == "COMPLETE" and "sharpe_per_period" in t.user_attrs
        ]


@runtime_checkable
class Predictor(Protocol):
    """A fitted model: probability that the label is positive for each row of ``X``.

    A model whose prediction for a row reads earlier rows too (a sequence model) also has a
    ``lookback`` attribute: how many rows, the row itself included, one prediction reads. Its
    ``predict_proba(X)`` then uses the rows of ``X`` before each row, so a caller that predicts a
    block of rows passes the block with the ``lookback - 1`` rows before it (`predict_rows`).
    """

    feature_names: tuple[str, ...]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(y = 1) per row, float64, for ``X`` with columns in `feature_names` order."""
        ...

    def to_files(self) -> dict[str, bytes]:
        """The artifact files that `Trainer.load` rebuilds this model from (never a pickle)."""
        ...

    def importance(self, kind: str = "gain") -> dict[str, float]:
        """Model-intrinsic importance per feature (``"gain"`` or ``"split"``)."""
        ...


def predict_rows(
    predict: Callable[[np.ndarray], np.ndarray], lookback: int, X: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """P(y = 1) for ``X[rows]``, a contiguous ascending block, giving a model that reads
    history (``lookback`` > 1) the rows just before the block as context, so its first
    predictions see as much history as the later ones. The context rows are features only
    (known at prediction time), never labels: this adds no look-ahead. Other blocks, and
    models without history (``lookback`` 1), get ``X[rows]`` alone."""
    rows = np.asarray(rows)
    if rows.size == 0:
        return predict(X[rows])
    start, end = int(rows[0]), int(rows[-1]) + 1
    k = min(max(int(lookback) - 1, 0), start)
    if k == 0 or end - start != rows.size or not np.array_equal(rows, np.arange(start, end)):
        return predict(X[rows])
    return predict(X[start - k : end])[k:]


def lookback_of(model: object) -> int:
    """A `Predictor`'s ``lookback`` (1 for models without one)."""
    return max(int(getattr(model, "lookback", 1) or 1), 1)


# ------------------------------------------------------------------------------- trainer SDK


@dataclass(frozen=True, kw_only=True)
class SearchContext:
    """What a `ModelTrainer.search_space` may size its ranges by."""

    n_train_min: int
    """Training rows of the smallest CV fold (cap leaf sizes, batch sizes... by it)."""
    n_rows: int
    n_features: int
    feature_names: tuple[str, ...]
    seed: int


Report = Callable[[int, float], None]
"""``report(step, loss)``: a fit's validation loss after ``step`` (an iteration, an epoch),
steps increasing from 1. The core may decide to prune the trial and then raises from inside
``report``: let the exception propagate (do not catch it), the core marks the trial pruned."""


@dataclass(frozen=True, kw_only=True)
class FoldsFit:
    """One trial's fit of every CV fold at once (the optional `FoldSearch` fast path)."""

    loss: float
    """The trial's objective: the fold-mean validation log loss it stopped at."""
    probas: tuple[np.ndarray, ...]
    """P(y = 1) on each fold's test rows, in fold order, rows ascending."""
    user_attrs: dict[str, Any] = field(default_factory=dict)
    """Extra per-trial numbers to record (e.g. LightGBM's ``best_iteration``)."""
    refit_equal: bool = False
    """True when ``probas`` are what ``fit`` with the trial's final recipe (``final_params``)
    would predict after fitting each fold's training rows alone (same bins, same trees, up to
    the order floating-point sums are added in): the best trial's folds then are the
    validation's refits, and the validator scores them instead of fitting them again."""


@runtime_checkable
class FoldSearch(Protocol):
    """A trainer's own loop over all folds of a task, set up once per search (optional)."""

    def run(self, params: Mapping[str, Any], report: Report | None) -> FoldsFit: ...

    def close(self) -> None: ...


@runtime_checkable
class ModelTrainer(Protocol):
    """The trainer SDK: a model family in five methods; autoopt's core owns the search.

    The core (`autoopt.search`) opens the Optuna study (storage, seeded TPE, pruner), enqueues
    `default_params` as the first trial, asks `search_space` for each trial's parameters,
    `fit`s one model per purged CV fold, scores the fold's test rows with `predict` (log loss,
    then the per-period and annualised Sharpe, trades and returns of the concatenated
    out-of-sample path after costs), prunes through ``report``, honours the trial budget across
    workers and the time budget, and returns the `TuneResult` the gate judges. A release is
    ``save``'d to the registry and ``load``'ed by watchers.

    Optional members, used when present:

    * ``default_params(n_train) -> dict``: a sane first trial (enqueued) and the untuned recipe
      feature selection fits with (default: the first trial's parameters are sampled);
    * ``importance(model, kind)``: per-feature importance, one number per feature in the
      fitted ``feature_names`` order (or a dict by name);
    * ``fit_errors``: exception types that fail one trial (recorded) instead of the search;
    * ``final_params(params, user_attrs) -> dict``: the best trial's fit recipe from its
      parameters and user attributes (LightGBM adds the boosting rounds early stopping found);
    * ``max_steps``: the most steps one ``fit`` reports (default 1000; pruning compares fold k's
      step s across trials as step ``k * max_steps + s``);
    * ``fold_search(task) -> FoldSearch``: a fast path that fits all folds of a trial together
      (LightGBM boosts them in lockstep and prunes on the fold-mean loss); with it, also
      ``pruner_steps() -> dict(warmup_steps=, interval_steps=, min_resource=)`` in its step
      unit (optionally ``reduction_factor=``, successive halving's and hyperband's, default 3).

    A ``fit`` result that already is a `Predictor` (``predict_proba``, ``to_files``,
    ``feature_names``) is used as is; any other model object is wrapped so that the pipeline,
    the registry and watchers reach it only through ``predict``, ``save`` and ``load``.
    """

    name: str
    model_type: str
    """What the registry manifest records, e.g. ``"lightgbm"``."""

    def search_space(self, trial: Any, ctx: SearchContext) -> dict[str, Any]:
        """This trial's parameters, from ``trial.suggest_int/float/categorical`` (an Optuna
        trial; constants may be added to the returned dict)."""
        ...

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        params: Mapping[str, Any],
        *,
        feature_names: Sequence[str],
        seed: int = 42,
        threads: int = 1,
        valid: tuple[np.ndarray, np.ndarray] | None = None,
        report: Report | None = None,
    ) -> Any:
        """One model with ``params``. During the search ``valid`` is the fold's test rows
        (for early stopping) and ``report`` the pruning callback; both are None for the final
        fit."""
        ...

    def predict(self, model: Any, X: np.ndarray) -> np.ndarray:
        """P(y = 1) per row of ``X`` (columns in the fitted ``feature_names`` order)."""
        ...

    def save(self, model: Any) -> dict[str, bytes]:
        """The artifact files (native formats, never a pickle)."""
        ...

    def load(self, files: Mapping[str, bytes]) -> Any:
        """A model from `save`'s files (checksum-verified by the registry)."""
        ...


def is_sdk_trainer(component: object) -> bool:
    """Whether a registered trainer uses the SDK (`ModelTrainer`: the core runs its search)
    rather than the legacy interface (`Trainer`: it runs its own ``tune``)."""
    return callable(getattr(component, "search_space", None))


@runtime_checkable
class Trainer(Protocol):
    """Tunes, fits and loads one model family: the legacy trainer interface, and what the
    pipeline talks to. An SDK trainer (`ModelTrainer`) is adapted to it by the core
    (`autoopt.search.SearchTrainer`); a trainer registering this directly runs its own search
    (``tune``), recording each completed trial's per-period out-of-sample Sharpe after costs in
    ``user_attrs["sharpe_per_period"]``."""

    name: str
    model_type: str
    """What the registry manifest records, e.g. ``"lightgbm"``."""

    def tune(self, task: TrainTask) -> TuneResult:
        """Hyperparameter search on ``task.folds``, honouring the trial and time budgets."""
        ...

    def default_params(self, n_train: int) -> dict[str, Any]:
        """Reasonable untuned parameters (feature selection fits with these)."""
        ...

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        params: Mapping[str, Any],
        feature_names: Sequence[str],
        *,
        seed: int = 42,
        threads: int = 1,
    ) -> Predictor:
        """Train one model with fixed ``params`` (as returned in `TuneResult.params`)."""
        ...

    def load(self, files: Mapping[str, bytes]) -> Predictor:
        """Rebuild a predictor from artifact files (already checksum-verified by the registry)."""
        ...


# ------------------------------------------------------------------------------- validation

FitFn = Callable[[np.ndarray, np.ndarray], Predictor]
"""Train a model recipe on (X_train, y_train); the validator decides which rows and columns."""


@dataclass(frozen=True, kw_only=True)
class ValidationResult:
    """Out-of-sample scores of one model recipe on a task's folds."""

    fold_metrics: tuple[dict[str, float], ...]
    """Per fold: classification metrics plus strategy metrics after costs (incl. n_trades)."""
    returns: np.ndarray
    """Per-period net strategy returns of all test folds, concatenated in time order."""
    metrics: dict[str, float]
    """Fold means of every metric (n_trades summed)."""


@runtime_checkable
class Validator(Protocol):
    """Scores a model recipe out of sample on a task's folds.

    Optional: ``score(task, probas) -> ValidationResult``, the same scoring of predictions
    already made on each fold's test rows; with it the pipeline scores the best trial's own
    fold predictions when they are the refits (`FoldsFit.refit_equal`) instead of fitting
    every fold again."""

    name: str

    def validate(
        self, task: TrainTask, fit: FitFn, columns: Sequence[int] | None = None
    ) -> ValidationResult:
        """Fit on each fold's training rows, predict its test rows, score after costs.

        ``columns`` selects feature columns of ``task.X`` (default: all).
        """
        ...


# ------------------------------------------------------------------------------- risk / drift


@dataclass(frozen=True, kw_only=True)
class RiskTask:
    """History a risk tuner chooses parameters from."""

    symbol: str
    bars: pl.DataFrame
    positions: np.ndarray
    """The model's position per bar (-1, 0, 1), aligned with ``bars``."""
    current: dict[str, float] = field(default_factory=dict)
    costs: Costs = field(default_factory=Costs)
    seed: int = 42


@runtime_checkable
class RiskTuner(Protocol):
    """Chooses risk parameters (stops, sizing, drawdown limits, weights) from history."""

    name: str

    def tune(self, task: RiskTask) -> dict[str, float]: ...


@runtime_checkable
class StreamDetector(Protocol):
    """One live streaming drift detector: the decision core feeds it one value at a time."""

    def update(self, x: float) -> bool:
        """Take the next value (finite float); True when a change is detected now. The core
        then discards this detector and starts a fresh one, so one change fires once."""
        ...

    def to_bytes(self) -> bytes:
        """The detector's whole state (never a pickle): what a checkpoint keeps."""
        ...


@runtime_checkable
class DriftDetectorFactory(Protocol):
    """Builds and restores a streaming drift detector (`StreamDetector`) watched by the
    decision core on the prediction and outcome streams (``policy.drift.detectors``).

    ``name`` is what the config lists and what a detection's reason says (``drift.<name>``);
    ``create(**params)`` gets the ``[policy.drift.params.<name>]`` table (checked once at start:
    a bad param is a ConfigError there); ``from_bytes(data)`` rebuilds a detector from its
    ``to_bytes()``, so checkpoints and replays carry it. Both must be deterministic (no clock,
    no unseeded randomness): replaying the same log gives the same decisions.
    """

    name: str

    def create(self, **params: Any) -> StreamDetector: ...

    def from_bytes(self, data: bytes) -> StreamDetector: ...


__all__ = [
    "Costs",
    "DataSource",
    "DriftDetectorFactory",
    "FeatureSet",
    "FitFn",
    "FoldSearch",
    "FoldsFit",
    "IncrementalSource",
    "LogSource",
    "ModelTrainer",
    "Predictor",
    "RiskTask",
    "Report",
    "RiskTuner",
    "SearchContext",
    "StreamDetector",
    "TrainTask",
    "Trainer",
    "TrialRecord",
    "TuneResult",
    "ValidationResult",
    "Validator",
    "is_sdk_trainer",
    "lookback_of",
    "predict_rows",
]
