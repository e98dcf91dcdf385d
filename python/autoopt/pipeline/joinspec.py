"""What a worker needs to join a retrain's own study, and how it rebuilds the very objective.

Why: a retrain's study is only worth sharing if every trial, whoever runs it, scores the same
parameters on the same rows, folds and costs; a worker that tuned on other bars or another label
would mix two searches into one Deflated Sharpe count. So a retrain that tunes in a shared
storage (PostgreSQL, the NATS journal, an SQLite file) records in the study's user attributes
(``join_spec``, written once, `autoopt.search.record_study_attrs`) where its rows come from and
two digests; a worker (`autoopt worker --study`) rebuilds the task through its own config and
plugins and refuses in one line unless both digests match:

* ``config_digest``: the pipeline settings that shape the objective (label, CV, costs, seed,
  pruner, feature set, validation, data policy...), not the per-host ones (storage URL, threads,
  trial and time budgets, model list, gate thresholds);
* ``data_digest``: the tuned rows themselves (features, labels, forward returns, folds).

Never a secret: the source URI is recorded through `autoopt.redact`, and the storage URL is not
recorded at all (a worker uses its own config's).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from autoopt.config import Config
from autoopt.errors import ConfigError, DataError
from autoopt.plugins.interfaces import TrainTask
from autoopt.redact import MASK, redact

if TYPE_CHECKING:
    import polars as pl

KEY = "join_spec"
VERSION = 1
PER_HOST = ("models", "trials", "time_budget_s", "threads", "optuna_storage",
            "ingest_batch_rows", "history_days", "gate", "parallel_symbols")
"""Pipeline settings a worker may set differently: they do not change what a trial scores."""


def config_digest(config: Config) -> str:
    """Digest of the pipeline settings that shape a trial's objective (see the module doc)."""
    tree = msgspec.to_builtins(config.pipeline)
    for key in PER_HOST:
        tree.pop(key, None)
    return hashlib.sha256(msgspec.json.encode(tree, order="sorted")).hexdigest()[:32]


def data_digest(task: TrainTask) -> str:
    """Digest of the rows a trial is scored on: features, labels, returns, folds."""
    h = hashlib.sha256()
    h.update(msgspec.json.encode([list(task.feature_names), task.periods_per_year,
                                  task.costs.fee_bps, task.costs.slippage_bps, task.seed]))
    for a in (task.X, task.y, task.forward_returns):
        h.update(np.ascontiguousarray(a).tobytes())
    for train, test in task.folds:
        h.update(np.asarray(train, dtype=np.int64).tobytes())
        h.update(b"|")
        h.update(np.asarray(test, dtype=np.int64).tobytes())
    return h.hexdigest()[:32]


def base_spec(config: Config, *, symbol: str, model: str, source: str,
              bars: pl.DataFrame) -> dict[str, Any]:
    """The retrain's part of the spec: where the tuned rows come from (the range of the bars
    it loaded; the worker cuts the tuned bars out of them as the retrain did,
    `evidence_frame`)."""
    ts = bars["ts"].to_numpy()
    return {"version": VERSION, "symbol": symbol, "trainer": model, "source": redact(source),
            "bars_start_ns": int(ts[0]), "bars_end_ns": int(ts[-1]), "n_bars": int(ts.size),
            "config_digest": config_digest(config)}


def complete(base: Mapping[str, Any], task: TrainTask, features: Sequence[str],
             config: Config) -> dict[str, Any]:
    """The whole spec, once the features are selected and the tuning task built."""
    p = config.pipeline
    return {KEY: dict(base) | {
        "features": list(features), "seed": task.seed, "n_trials": task.n_trials,
        "costs": {"fee_bps": task.costs.fee_bps, "slippage_bps": task.costs.slippage_bps},
        "folds": {"cv": msgspec.to_builtins(p.cv), "n": len(task.folds),
                  "grid": getattr(p.validation, "grid", None)},
        "rows": int(task.X.shape[0]), "data_digest": data_digest(task)}}


def spec_of(user_attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    spec = user_attrs.get(KEY)
    return dict(spec) if isinstance(spec, Mapping) else None


def check_config(spec: Mapping[str, Any], config: Config, study: str) -> None:
    """ConfigError (one line) unless this process's pipeline settings are the retrain's."""
    if spec.get("version") != VERSION:
        raise ConfigError(f"study {study!r}: join spec version {spec.get('version')!r}, this "
                          f"autoopt reads version {VERSION}")
    mine = config_digest(config)
    if spec.get("config_digest") != mine:
        raise ConfigError(
            f"refused to join study {study!r}: this worker's pipeline config (digest {mine}) "
            f"differs from the retrain's ({spec.get('config_digest')}); use the same [pipeline] "
            f"settings (label, cv, costs, seed, pruner, feature set, validation, data policy)")


def source_of(spec: Mapping[str, Any], override: str | None, config: Config) -> str:
    """The URI the worker loads bars from: ``--source``, else the retrain's when it carries no
    secret, else the worker config's ``[service] source``."""
    if override:
        return override
    recorded = str(spec.get("source") or "")
    if recorded and MASK not in recorded:
        return recorded
    return config.service.source


def bars_range(frame: pl.DataFrame, spec: Mapping[str, Any]) -> pl.DataFrame:
    """The retrain's bars out of what the worker's source returned; DataError when absent."""
    import polars as pl

    out = frame.sort("ts").filter(pl.col("ts").is_between(int(spec["bars_start_ns"]),
                                                           int(spec["bars_end_ns"])))
    if out.height != int(spec["n_bars"]):
        raise DataError(f"{spec['symbol']}: the source has {out.height} bars in the retrain's "
                        f"range, the retrain had {spec['n_bars']}: not the same data")
    return out


def evidence_frame(config: Config, frame: pl.DataFrame) -> pl.DataFrame:
    """The bars a retrain tunes on out of the bars it loaded, as `run_retrain` cuts them: with
    a calendar grid the evidence bars, else the training window."""
    from autoopt.pipeline.dataset import training_bars
    from autoopt.pipeline.evidence import evidence_bars

    grid = evidence_bars(config, frame)
    return grid if grid is not None else training_bars(frame, config.pipeline.train_window_bars)


def rebuild_task(config: Config, spec: Mapping[str, Any], frame: pl.DataFrame,
                 feature_set: Any, *, storage: str, study: str) -> TrainTask:
    """The retrain's tuning task, rebuilt the way `autoopt.pipeline.candidate.fit_candidate`
    built it; DataError (one line) when the rows differ from the retrain's (``data_digest``)."""
    from dataclasses import replace

    from autoopt.pipeline.candidate import development, train_task
    from autoopt.pipeline.dataset import build_dataset, validation_policy

    p = config.pipeline
    symbol = str(spec["symbol"])
    ds = build_dataset(symbol, evidence_frame(config, bars_range(frame, spec)), feature_set,
                       p.label, validation_policy(p.data_policy))
    sel = development(config, ds).select(list(spec["features"]))
    task = replace(train_task(config, sel, n_trials=int(spec["n_trials"]), storage=storage),
                   study_name=study)
    mine = data_digest(task)
    if mine != spec.get("data_digest"):
        raise DataError(f"refused to join study {study!r}: the rows this worker built (digest "
                        f"{mine}) differ from the retrain's ({spec.get('data_digest')}): other "
                        f"bars or another feature set version")
    return task


__all__ = ["KEY", "PER_HOST", "VERSION", "base_spec", "bars_range", "check_config", "complete",
           "config_digest", "data_digest", "evidence_frame", "rebuild_task", "source_of", "spec_of"]
