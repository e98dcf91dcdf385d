"""The model probabilities strategy parameters are tuned on: out of sample, bar by bar.

Why refit instead of predicting with the stored champion: the champion was trained on most of
the history, so its probabilities there are in-sample and would make any threshold look good.
The model's recipe (the current release's params and features when the symbol has one, else
the trainer's untuned defaults on every feature) is refitted on each purged walk-forward fold of
the pipeline's own CV settings and predicts that fold's test rows only; bars no test fold covers
have no probability and are cut off before tuning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from autoopt.errors import DataError


@dataclass(frozen=True)
class Signal:
    symbol: str
    bars: pl.DataFrame
    """Validated bars from the first out-of-sample prediction on."""
    prob: np.ndarray
    """P(up) decided at each bar's close (NaN where no fold predicts it)."""
    recipe: str
    """Where the model recipe came from (a release id or ``default params``)."""
    model_release_id: str


def _recipe(registry: Any, symbol: str, trainer_name: str, trainer: Any, ds: Any
            ) -> tuple[dict[str, Any], list[str], str, str]:
    cur = registry.current(symbol) if registry is not None else None
    if cur is not None:
        m = registry.manifest(symbol, cur)
        if (m.trainer or m.model_type) == trainer_name and all(f in ds.feature_names for f in m.features):
            return dict(m.params), list(m.features), f"release {cur}", cur
    return trainer.default_params(ds.n_rows), list(ds.feature_names), "default params", cur or ""


def oos_probabilities(config: Any, plugins: Any, symbol: str, bars: pl.DataFrame,
                      registry: Any = None, recipe: Any = None) -> Signal:
    """Out-of-sample probabilities of the symbol's model recipe (module doc). ``recipe``: a
    model (``release_id``, ``trainer``, ``params``, ``features``) to use instead of the
    registry's current release (the policy backtest's champion of the moment)."""
    from autoopt.data.validate import validate_bars
    from autoopt.pipeline.dataset import build_dataset, make_folds, validation_policy
    from autoopt.plugins.interfaces import lookback_of, predict_rows

    p = config.pipeline
    policy = validation_policy(p.data_policy)
    clean, _ = validate_bars(bars, symbol, policy)
    ds = build_dataset(symbol, clean, plugins.component("feature_set", p.feature_set), p.label,
                       policy)
    name = p.models[0]
    trainer = plugins.trainer(name)
    if recipe is not None and recipe.trainer == name and all(
            f in ds.feature_names for f in recipe.features):
        params, names = dict(recipe.params), list(recipe.features)
        label, model_release = f"release {recipe.release_id}", recipe.release_id
    else:
        params, names, label, model_release = _recipe(registry, symbol, name, trainer, ds)
    X = np.ascontiguousarray(ds.X[:, ds.columns(names)])
    rows = np.full(ds.n_rows, np.nan)
    for train, test in make_folds(ds, p.cv):
        model = trainer.fit(X[train], ds.y[train], params, names, seed=p.seed, threads=p.threads)
        rows[test] = predict_rows(model.predict_proba, lookback_of(model), X, test)
    ts = clean["ts"].to_numpy().astype(np.int64)
    prob = np.full(ts.size, np.nan)
    idx = np.searchsorted(ts, ds.ts)
    prob[idx] = rows
    covered = np.flatnonzero(np.isfinite(prob))
    if covered.size < 50:
        raise DataError(f"{symbol}: only {covered.size} bars have an out-of-sample probability; "
                        "need more history to tune strategy params")
    first = int(covered[0])
    return Signal(symbol, clean[first:], np.clip(prob[first:], 0.0, 1.0), label, model_release)


__all__ = ["Signal", "oos_probabilities"]
