"""The gate's evidence beyond the cross-validated figures: the untouched holdout, CPCV paths,
PBO over the study's trials and this run's trial-ledger rows (docs/gate.md).

Why a module of its own: `autoopt.pipeline.candidate` (shared by the nightly retrain and the
policy backtest) calls these pure steps; they hold no I/O, so the backtest, which carries a
fitted candidate between worker processes, carries the `Evidence` struct as data.

Order matters for the holdout: `development` cuts the holdout off *before* feature selection,
tuning and validation see the rows; `holdout_check` is the only step that reads them.

With a calendar grid (``[pipeline.validation] grid = "7d"``) the evidence is computed on
`evidence_bars`: the bars before the last grid boundary (the window of
``train_window_bars`` counted back from it). The walk-forward test blocks and the holdout are
whole grid blocks (`autoopt.validation.cv.GridWalkForward`, `split_holdout_grid`), so
selection, tuning, validation, the holdout, CPCV and PBO depend on those bars only, and every
retrain whose data end in the same block computes the identical evidence (the policy
backtest computes it once: `autoopt.backtest.training`). The rows after the boundary are used
by the release's final fit only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import msgspec
import numpy as np
import polars as pl

from autoopt.config import Config
from autoopt.errors import DataError
from autoopt.pipeline.dataset import Dataset, training_bars
from autoopt.plugins.interfaces import (
    TrainTask,
    TuneResult,
    ValidationResult,
    lookback_of,
    predict_rows,
)
from autoopt.validation.cpcv import CombinatorialPurgedCV
from autoopt.validation.cv import grid_boundary, parse_grid
from autoopt.validation.holdout import (
    HoldoutFigures,
    HoldoutSplit,
    holdout_figures,
    split_holdout,
    split_holdout_grid,
)
from autoopt.validation.ledger import ONE_CLUSTER_RHO, Signature, cluster_trials, signature
from autoopt.validation.metrics import positions_from_proba, sharpe_ratio, strategy_returns
from autoopt.validation.pbo import PBOResult, probability_of_backtest_overfitting


class LedgerRow(msgspec.Struct, frozen=True, kw_only=True):
    """One configuration tried for a symbol (what a ``training.ledger`` event carries)."""

    key: str
    source: str
    """``trial`` (a hyperparameter trial of ``model``), ``feature_selection``, ``risk``..."""
    model: str = ""
    state: str = "COMPLETE"
    sharpe: float | None = None
    """Per-period out-of-sample Sharpe after costs, when the configuration has a series."""
    days: list[int] = []
    returns: list[float] = []

    @property
    def signature(self) -> Signature:
        return Signature(self.days, self.returns)


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    holdout: HoldoutFigures | None = None
    holdout_rows: int = 0
    development_rows: int = 0
    pbo: PBOResult | None = None
    pbo_note: str = ""
    path_sharpes: list[float] = []
    ledger: list[LedgerRow] = []


def grid_of(config: Config) -> int | None:
    """``[pipeline.validation] grid`` in ns (None: off); a bad value is one ConfigError line."""
    return parse_grid(config.pipeline.validation.grid)


def evidence_bars(config: Config, bars: pl.DataFrame) -> pl.DataFrame | None:
    """With a grid: the bars the evidence may see, those before the last grid boundary at or
    before the last bar's close (`autoopt.validation.cv.grid_boundary`), the last
    ``train_window_bars`` of them when windowed. None without a grid (the evidence sees the
    training bars, as the release does). ``bars``: sorted, not yet windowed."""
    grid = grid_of(config)
    if grid is None or bars.height < 2:
        return None
    boundary = grid_boundary(bars["ts"].to_numpy(), grid)
    return training_bars(bars.filter(pl.col("ts") < boundary),
                         config.pipeline.train_window_bars)


def holdout_split(config: Config, ds: Dataset) -> HoldoutSplit | None:
    v, cv = config.pipeline.validation, config.pipeline.cv
    embargo = int(cv.embargo_fraction * ds.n_rows)
    grid = grid_of(config)
    if grid is not None:
        return split_holdout_grid(ds.ts, ds.t1, v.holdout_fraction, grid, embargo=embargo)
    return split_holdout(ds.n_rows, ds.t1, v.holdout_fraction, embargo=embargo)


def head(ds: Dataset, stop: int) -> Dataset:
    """The first ``stop`` rows of a dataset."""
    return replace(ds, ts=ds.ts[:stop], X=np.ascontiguousarray(ds.X[:stop]), y=ds.y[:stop],
                   label=ds.label[:stop], t1=ds.t1[:stop],
                   forward_returns=ds.forward_returns[:stop])


def development(config: Config, ds: Dataset) -> Dataset:
    """The rows selection, tuning and validation may see: everything before the holdout."""
    split = holdout_split(config, ds)
    return ds if split is None else head(ds, split.dev_end)


def cpcv_splitter(config: Config) -> CombinatorialPurgedCV:
    v = config.pipeline.validation
    return CombinatorialPurgedCV(v.cpcv_groups, v.cpcv_test_groups,
                                 embargo=config.pipeline.cv.embargo_fraction)


def scheme_task(config: Config, task: TrainTask, ds: Dataset) -> TrainTask:
    """The task the challenger and the champion are validated on: the tuning folds
    (walk-forward) or CPCV's splits of the same development rows."""
    if config.pipeline.validation.scheme != "cpcv":
        return task
    try:
        splits = tuple(cpcv_splitter(config).split(ds.n_rows, ds.t1))
    except DataError as exc:
        raise DataError(f"{ds.symbol}: cannot cut CPCV splits: {exc}") from exc
    return replace(task, folds=splits)


def cpcv_paths(
    config: Config, task: TrainTask, result: ValidationResult
) -> tuple[ValidationResult, list[float]]:
    """The CPCV result with ``returns`` = the median-Sharpe path, and every path's Sharpe."""
    cp = cpcv_splitter(config)
    sizes = [len(te) for _, te in task.folds]
    parts = np.split(np.asarray(result.returns), np.cumsum(sizes)[:-1])
    paths = cp.paths(task.X.shape[0], parts)
    srs = [sharpe_ratio(p) for p in paths]
    median = int(np.argsort(srs)[len(srs) // 2])
    return replace(result, returns=paths[median]), srs


def pbo_of(config: Config, tuned: TuneResult) -> tuple[PBOResult | None, str]:
    """PBO over the study's completed trials that recorded their returns (None and why when
    there are too few).

    Selection is among *effective* configurations: the trials are clustered as the ledger does
    (`autoopt.validation.ledger.cluster_trials`, on the full series) and each cluster's mean
    return series is one candidate. Why: neighbouring hyperparameters that trade alike are
    one choice, not several; among interchangeable trials the in-sample winner's rank out of
    sample is a coin toss (PBO ≈ 0.5 whether or not there is an edge), which says nothing
    about overfitting. One cluster: nothing was selected, no PBO."""
    if not config.pipeline.validation.pbo:
        return None, ""
    series = [tuned.trial_returns[k] for k in sorted(tuned.trial_returns)]
    if len(series) < 2:
        return None, f"pbo_skipped: {len(series)} trial return series (needs >= 2)"
    lengths = {s.size for s in series}
    if len(lengths) != 1:
        return None, "pbo_skipped: trials' return series differ in length"
    m = np.column_stack(series).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.nan_to_num(np.corrcoef(m, rowvar=False), nan=0.0)
    np.fill_diagonal(rho, 1.0)
    labels = cluster_trials(rho)
    k = int(labels.max()) + 1
    if k < 2:
        return None, (f"pbo_skipped: the {len(series)} trials' returns are one cluster "
                      f"(every pair correlated >= {ONE_CLUSTER_RHO}): nothing was selected")
    clusters = np.column_stack([m[:, labels == c].mean(axis=1) for c in range(k)])
    try:
        return probability_of_backtest_overfitting(
            clusters, config.pipeline.validation.pbo_partitions), ""
    except DataError as exc:
        return None, f"pbo_skipped: {exc}"


def oos_times(ds: Dataset, task: TrainTask) -> np.ndarray:
    """Bar times of the tuning folds' test rows, concatenated as a trial's returns are."""
    return np.concatenate([ds.ts[np.sort(te)] for _, te in task.folds])


def ledger_rows(
    model: str, study: str, tuned: TuneResult, ts: np.ndarray, feature_selection: bool
) -> list[LedgerRow]:
    """This run's configurations: every trial started, and the feature-selection step."""
    rows = []
    if feature_selection:
        rows.append(LedgerRow(key=f"{study}#selection", source="feature_selection", model=model))
    for t in tuned.trials:
        r = tuned.trial_returns.get(t.number)
        sig = signature(ts, r) if r is not None and r.size == ts.size else Signature([], [])
        sr = t.user_attrs.get("sharpe_per_period")
        rows.append(LedgerRow(key=f"{study}#{t.number}", source="trial", model=model,
                              state=t.state, sharpe=float(sr) if sr is not None else None,
                              days=sig.days, returns=sig.returns))
    return rows


def holdout_check(
    ds: Dataset, split: HoldoutSplit, names: Sequence[str], fit: Callable[[np.ndarray, np.ndarray], Any],
    fee_bps: float, slippage_bps: float,
) -> HoldoutFigures:
    """Fit the chosen recipe on the development rows and score it once on the holdout."""
    cols = ds.columns(names)
    X = ds.X[:, cols]
    model = fit(X[: split.dev_end], ds.y[: split.dev_end])
    rows = np.arange(split.start, split.n)
    proba = predict_rows(model.predict_proba, lookback_of(model), X, rows)
    pos = positions_from_proba(proba)
    r = strategy_returns(pos, ds.forward_returns[rows], fee_bps, slippage_bps)
    return holdout_figures(r, pos, ds.periods_per_year)


__all__ = [
    "Evidence", "LedgerRow", "cpcv_paths", "development", "evidence_bars", "grid_of", "head",
    "holdout_check", "holdout_split", "ledger_rows", "oos_times", "pbo_of", "scheme_task",
]
