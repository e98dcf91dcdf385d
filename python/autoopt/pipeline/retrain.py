"""The nightly retrain: for each symbol and model, data → features → selection → tuning →
purged-CV validation after costs → gate against the champion on the same folds → release.

Everything is recorded in the event log, in this order per (symbol, model):
``TrainingStarted``, one ``TrialCompleted`` per Optuna trial, ``TrainingFinished`` (metrics,
best params, the selected features and every candidate's importances), ``ValidationVerdict``
(always, with the reasons), and when the gate passes ``ModelReleased``, the release's training
reference (a ``FeatureBatch`` with its ``release_id``, for drift checks) and ``ModelPromoted``.
Ingested bars go in first as ``BarBatch`` events.

Event ids are derived from the run id and the step, and with a ``cause`` (e.g. a
``RetrainRequested`` from the service) the run id itself is derived from the cause, so a retried
run dedups in the log. The Optuna study of a job is named from a digest of its data and
settings, so rerunning on the same data resumes it rather than starting over.

The champion is scored by refitting its recorded recipe (model type, params, features from its
manifest, after the registry verified its checksums and the trainer loaded its artifact) on the
training rows of each of the challenger's folds: the stored champion was trained on data that
includes most test blocks, so predicting with it directly would score it in-sample.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import polars as pl

from autoopt import faults
from autoopt.clock import Clock, SystemClock
from autoopt.config import Config
from autoopt.data import ValidationPolicy
from autoopt.errors import ArtifactError, DataError, PluginError
from autoopt.events import (
    Event,
    TrainingFinished,
    TrainingStarted,
    TrialCompleted,
    ValidationVerdict,
)
from autoopt.ids import derived_event_id, new_event_id
from autoopt.pipeline import joinspec
from autoopt.pipeline.candidate import final_model, fit_candidate, judge, score_recipe
from autoopt.pipeline.dataset import (
    Dataset,
    build_dataset,
    timeframe_label,
    training_bars,
    validation_policy,
)
from autoopt.pipeline.evidence import evidence_bars
from autoopt.pipeline.ingest import ingest_bars, last_stored_ts, stored_bars
from autoopt.pipeline.ledger_log import read_ledger, record_ledger
from autoopt.pipeline.recipe import recipe_fields
from autoopt.pipeline.release import ReleaseHistory, ReleaseSteps, read_history, step_id
from autoopt.pipeline.summary import ModelResult, RetrainSummary, finite, global_best, iso
from autoopt.pipeline.visibility import ProgressEvents, record_evaluation
from autoopt.plugins.interfaces import (
    Trainer,
    TrainTask,
    TrialRecord,
    ValidationResult,
    Validator,
)
from autoopt.plugins.manager import trainer_id
from autoopt.registry import Manifest, ModelRegistry, Recorded, open_registry
from autoopt.studies import configure_nats

if TYPE_CHECKING:
    from autoopt.log import EventLog
    from autoopt.plugins import Plugins

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """A progress report: ``stage`` of the (symbol, model) job, ``done`` of ``total`` steps."""

    symbol: str
    model: str
    stage: str
    done: int
    total: int


ProgressFn = Callable[[Progress], None]

_STAGES = 4  # select, validate, champion, gate; plus one step per trial


def default_storage(config: Config) -> str:
    """Optuna storage URL: the configured one, else SQLite in the data dir."""
    if config.pipeline.optuna_storage:
        return config.pipeline.optuna_storage
    path = Path(config.data_dir).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path / 'optuna.db'}"


def study_name(symbol: str, model: str, ds: Dataset, features: Sequence[str], config: Config) -> str:
    """Name of a job's study: same data and settings → same study → it resumes."""
    p = config.pipeline
    key = msgspec.json.encode(
        {
            "symbol": symbol, "model": model, "range": ds.data_range, "rows": ds.n_rows,
            "features": list(features), "label": p.label, "cv": p.cv, "costs": p.costs,
            "seed": p.seed, "pruning": p.pruning, "pruner": p.pruner,
        },
        order="sorted",
    )
    return f"{symbol}.{model}.{hashlib.sha256(key).hexdigest()[:16]}"


# ------------------------------------------------------------------------------ data


async def load_bars(
    source: Any,
    uri: str,
    symbols: Sequence[str] | None,
    event_log: EventLog,
    *,
    batch_rows: int,
    clock: Clock | None = None,
    policy: ValidationPolicy | None = None,
) -> dict[str, tuple[pl.DataFrame, str]]:
    """Bars and timeframe per symbol; new bars are validated with ``policy``, then appended to
    the log as `BarBatch` events (a rejected bar is never appended).

    Log sources read the log as is; incremental sources (exchanges) fetch only what follows the
    last stored bar and the history comes back from the log; other sources load everything and
    only the bars after the last stored one are appended.
    """
    out: dict[str, tuple[pl.DataFrame, str]] = {}
    if hasattr(source, "aload"):
        frames = await source.aload(uri, symbols, event_log)
        return {s: (df, timeframe_label(df["ts"].to_numpy())) for s, df in frames.items()}
    if hasattr(source, "load_since"):
        tf = source.timeframe(uri)
        names = list(symbols) if symbols else list(source.symbols_of(uri))
        last = {s: await last_stored_ts(event_log, s, tf) for s in names}
        since = {s: v + 1 for s, v in last.items() if v is not None}
        fresh = await asyncio.to_thread(source.load_since, uri, names, since)
        for s in names:
            await ingest_bars(event_log, s, tf, fresh[s], source=uri, batch_rows=batch_rows,
                              last_ts=last[s], clock=clock, policy=policy)
            bars = await stored_bars(event_log, s, tf, policy)
            if bars is None:
                raise DataError(f"{s}: {uri} returned no bars and the log holds none")
            out[s] = (bars, tf)
        return out
    frames = await asyncio.to_thread(source.load, uri, symbols)
    for s, df in frames.items():
        tf = timeframe_label(df["ts"].to_numpy())
        last = await last_stored_ts(event_log, s, tf)
        await ingest_bars(event_log, s, tf, df, source=uri, batch_rows=batch_rows, last_ts=last,
                          clock=clock, policy=policy)
        out[s] = (df, tf)
    return out


# ------------------------------------------------------------------------------ one job


class _Events:
    """Builds a job's events with ids derived from (run, symbol, model, step) and appends them."""

    def __init__(
        self, event_log: EventLog, run_id: str, cause: Event | None, clock: Clock, scope: str
    ) -> None:
        self.log = event_log
        self.run_id = run_id
        self.cause = cause
        self.clock = clock
        self.scope = scope

    @property
    def correlation_id(self) -> str:
        if self.cause is not None:
            return self.cause.correlation_id or self.cause.event_id
        return self.run_id

    def build(self, cls: type[Event], step: str, **fields: Any) -> Event:
        now = self.clock.now_ns()
        fields.setdefault("event_id", derived_event_id(self.run_id, f"{self.scope}/{step}"))
        fields.setdefault("ts_init", now)
        fields.setdefault("ts_event", now)
        if self.cause is not None:
            fields.setdefault("causation_id", self.cause.event_id)
        fields.setdefault("correlation_id", self.correlation_id)
        return cls(**fields)

    async def append(self, cls: type[Event], step: str, **fields: Any) -> Event:
        event = self.build(cls, step, **fields)
        await self.log.append(event)
        return event


def _trial_event(rec: TrialRecord, symbol: str, run_id: str, study: str, clock: Clock,
                 correlation_id: str) -> TrialCompleted:
    now = clock.now_ns()
    return TrialCompleted(
        event_id=derived_event_id(f"study/{study}", f"trial/{rec.number}"),
        ts_event=now,
        ts_init=now,
        correlation_id=correlation_id,
        study=study,
        number=rec.number,
        state=rec.state,
        params=rec.params,
        value=rec.value,
        duration_s=rec.duration_s,
        symbol=symbol,
        run_id=run_id,
        user_attrs={k: v for k, v in rec.user_attrs.items()
                    if isinstance(v, (int, float, str, bool))},
    )


def reference_fields(config: Config, ds: Dataset) -> Callable[[Manifest], dict[str, Any]]:
    """The release's training reference for drift checks: its latest training rows (up to the
    end of the manifest's data range) of every feature, as `FeatureBatch` fields (what PSI/KS
    compare live batches to)."""

    def build(manifest: Manifest) -> dict[str, Any]:
        end = int(np.searchsorted(ds.ts, manifest.data_range.end, side="right"))
        part = slice(max(0, end - config.policy.drift.reference_max_rows), end)
        return {
            "symbol": ds.symbol,
            "feature_set": config.pipeline.feature_set, "columns": list(ds.feature_names),
            "ts": np.ascontiguousarray(ds.ts[part], dtype="<i8").tobytes(),
            "values": np.ascontiguousarray(ds.X[part].T, dtype="<f8").tobytes(),
        }

    return build


def release_steps(events: _Events, registry: ModelRegistry,
                  config: Config | None = None) -> ReleaseSteps:
    canary = None
    if config is not None and config.release.mode == "canary":
        canary = config.release.canary
    return ReleaseSteps(events.log, registry, events.clock, events.run_id, canary)


def _decided(verdict: ValidationVerdict, model: str, history: ReleaseHistory,
             registry: ModelRegistry, metric: str, note: str) -> ModelResult:
    """A job an earlier attempt already decided, reported from its verdict (and release)."""
    promoted = verdict.passed and step_id(verdict, "model.promoted") in history.ids
    manifest = registry.manifest(verdict.symbol, verdict.challenger) if promoted else None
    return ModelResult(
        symbol=verdict.symbol, model=model,
        score=float(verdict.metrics.get(metric, math.nan)), metrics=finite(verdict.metrics),
        params=dict(manifest.params) if manifest else {},
        features=list(manifest.features) if manifest else [], deployed=promoted,
        reasons=[*verdict.reasons, note], release_id=verdict.challenger if promoted else None,
        champion=verdict.champion, n_trials=verdict.n_trials,
        feature_importances=dict(manifest.feature_importances) if manifest else {},
    )


async def _finish_pending(
    config: Config, symbol: str, ds: Dataset, event_log: EventLog, registry: ModelRegistry,
    events: _Events,
) -> tuple[ReleaseHistory, dict[str, ModelResult]]:
    """Complete the symbol's pending release (a passing verdict a killed run left unpromoted)
    before any job runs; returns the history and the resumed result by trainer name."""
    history = await read_history(event_log, symbol)
    pending = history.pending
    if pending is None:
        return history, {}
    try:
        manifest = await release_steps(events, registry, config).complete(
            pending, history, reference_fields(config, ds))
    except ArtifactError as exc:  # nothing staged to finish: this run's promotion supersedes it
        log.error("retrain %s: cannot finish release %s of verdict %s: %s", symbol,
                  pending.challenger, pending.event_id, exc)
        return history, {}
    model = trainer_id(manifest.trainer, manifest.model_type)
    return history, {model: _decided(
        pending, model, history, registry, config.pipeline.gate.metric,
        f"resumed: finished release {pending.challenger} of verdict {pending.event_id}")}


@dataclass
class _Job:
    config: Config
    symbol: str
    model: str
    trainer: Trainer
    validator: Validator
    ds: Dataset
    plugins: Plugins
    registry: ModelRegistry
    events: _Events
    run_id: str
    storage: str
    time_budget_s: float | None
    n_trials: int
    clock: Clock
    progress: ProgressFn | None
    join: dict[str, Any] | None = None
    """What a worker needs to join this job's study (`autoopt.pipeline.joinspec`)."""
    published: ProgressEvents | None = None  # JobProgress events, set when the job runs
    evidence: Dataset | None = None
    """With a calendar grid: the rows built from `evidence_bars`, which selection, tuning and
    the gate see (``ds``: every training row, what the release is fit on)."""

    def report(self, stage: str, done: int) -> None:
        if self.progress is not None:
            self.progress(Progress(self.symbol, self.model, stage, done, self.n_trials + _STAGES))
        if self.published is not None:
            self.published(stage, done, self.n_trials + _STAGES)

    async def run(self) -> ModelResult:
        p = self.config.pipeline
        self.published = ProgressEvents(self.events.log, self.clock, run_id=self.run_id,
                                        symbol=self.symbol, model=self.model,
                                        correlation_id=self.events.correlation_id)
        t0 = time.perf_counter()
        ds = self.ds
        await self.events.append(
            TrainingStarted, "training.started", symbol=self.symbol, run_id=self.run_id,
            trainer=self.model, n_trials=self.n_trials, data_start=ds.data_range[0],
            data_end=ds.data_range[1],
            params={"rows": ds.n_rows, "timeframe": ds.timeframe,
                    "candidate_features": list(ds.feature_names), "seed": p.seed,
                    "pruning": p.pruning, "time_budget_s": self.time_budget_s},
        )
        self.report("selecting features", 0)

        loop = asyncio.get_running_loop()
        pending: list[Future[Any]] = []
        done_trials = 0
        study_ref: list[str] = []

        def study_of(features: Sequence[str]) -> str:
            study_ref.append(study_name(self.symbol, self.model, ds, features, self.config))
            return study_ref[-1]

        def on_trial(rec: TrialRecord) -> None:
            nonlocal done_trials
            done_trials += 1
            ev = _trial_event(rec, self.symbol, self.run_id, study_ref[-1], self.clock,
                              self.events.correlation_id)
            pending.append(asyncio.run_coroutine_threadsafe(self.events.log.append(ev), loop))
            self.report(f"trial {rec.number} {rec.state.lower()}", 1 + done_trials)

        def stage(name: str) -> None:
            self.report(name, 1 if name == "tuning" else 1 + self.n_trials)

        evidence = ds if self.evidence is None else self.evidence
        cand = await asyncio.to_thread(
            fit_candidate, self.config, evidence, self.trainer, self.validator,
            n_trials=self.n_trials, study_of=study_of, join=self.join,
            time_budget_s=self.time_budget_s,
            storage=self.storage, on_trial=on_trial, stage=stage, model=self.model, final=ds)
        for fut in pending:
            await asyncio.wrap_future(fut)
        selection, tuned, names, study = cand.selection, cand.tuned, cand.names, cand.study
        self.report("scoring champion", 2 + self.n_trials)
        released = (await read_history(self.events.log, self.symbol)).released
        champion_id, champion, champion_note = await asyncio.to_thread(
            self._champion, cand.task, released)
        self.report("gate", 3 + self.n_trials)

        past_ledger = await read_ledger(self.events.log, self.symbol)
        await record_ledger(self.events.append, self.symbol, self.run_id,
                            cand.evidence.ledger if cand.evidence else [])
        verdict, metrics = judge(self.config, cand, champion, past_ledger)
        reasons = [f"{r.code}: {r.message}" for r in verdict.reasons]
        if champion_note:
            reasons.append(champion_note)
        importances = selection.importances()

        await self.events.append(
            TrainingFinished, "training.finished", symbol=self.symbol, run_id=self.run_id,
            trainer=self.model, succeeded=True,
            metrics=metrics | {f"importance/{k}": v for k, v in importances.items()},
            best_params=dict(tuned.params) | {"features": names, "study": study,
                                             "best_trial": tuned.best_trial},
            duration_s=time.perf_counter() - t0, n_trials=tuned.n_trials,
        )

        release_id: str | None = None
        created_at = self.clock.now_ns()  # the verdict's time, and the release's created_at
        if verdict.passed:
            # staged (hidden) before the verdict names it: every step after it can be redone
            final = await asyncio.to_thread(final_model, self.config, self.trainer, cand)
            manifest, blobs = self.registry.prepare(
                self.symbol, final.to_files(), model_type=self.trainer.model_type,
                trainer=self.model, created_at=created_at, params=tuned.params, features=names,
                metrics=metrics, data_range=ds.data_range, parent_release=champion_id,
                feature_importances=importances,
                recipe=recipe_fields(self.config.pipeline.label, self.plugins.component(
                    "feature_set", self.config.pipeline.feature_set)),
            )
            self.registry.stage(manifest, blobs)
            release_id = manifest.release_id
        candidate = release_id or f"{self.run_id}/{self.symbol}/{self.model}"
        verdict_event = await self.events.append(
            ValidationVerdict, "model.verdict", symbol=self.symbol, challenger=candidate,
            passed=verdict.passed, reasons=reasons, metrics=metrics,
            champion=champion_id, champion_metrics=champion.metrics if champion else {},
            n_trials=tuned.n_trials,
            deflated_sharpe=verdict.stats.get("dsr"), ts_event=created_at,
        )
        if release_id is not None:
            faults.reached("after_verdict")
            history = await read_history(self.events.log, self.symbol)
            await release_steps(self.events, self.registry, self.config).complete(
                verdict_event, history, reference_fields(self.config, ds))  # type: ignore[arg-type]
        await record_evaluation(self.events.log, verdict_event, cand, champion,  # type: ignore[arg-type]
                                run_id=self.run_id, scope=self.events.scope, model=self.model)
        self.report("done", self.n_trials + _STAGES)
        await self.published.drain()
        return ModelResult(
            symbol=self.symbol, model=self.model, score=float(metrics.get(p.gate.metric, math.nan)),
            metrics=finite(metrics), params=dict(tuned.params), features=names,
            deployed=release_id is not None, reasons=reasons, release_id=release_id,
            champion=champion_id, n_trials=tuned.n_trials, study=study,
            feature_importances=importances, duration_s=time.perf_counter() - t0,
        )

    def _champion(
        self, task: TrainTask, released: Mapping[str, Recorded]
    ) -> tuple[str | None, ValidationResult | None, str]:
        """(champion id, its scores on the task's folds, a note when it cannot be scored). The
        champion is verified against its ModelReleased digests when the log recorded them."""
        rid = self.registry.current(self.symbol)
        if rid is None:
            return None, None, ""
        manifest, files = self.registry.load(self.symbol, rid, recorded=released.get(rid))
        trainer = self.plugins.release_trainer(manifest.trainer, manifest.model_type)
        trainer.load(files)  # the artifact must load, not just checksum
        missing = [f for f in manifest.features if f not in self.ds.feature_names]
        if missing:
            return rid, None, (
                f"champion_unscorable: champion {rid} uses features {missing} this feature set "
                "no longer computes; compared as if there were no champion")
        return rid, score_recipe(self.config, trainer, self.validator, task, self.ds,
                                 dict(manifest.params), manifest.features), ""


# ------------------------------------------------------------------------------ the run


def _failed(symbol: str, model: str, exc: BaseException, t0: float) -> ModelResult:
    return ModelResult(
        symbol=symbol, model=model, score=None, metrics={}, params={}, features=[],
        deployed=False, reasons=[f"error: {type(exc).__name__}: {exc}"],
        duration_s=time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}",
    )


async def run_retrain(
    config: Config,
    *,
    source: str,
    event_log: EventLog,
    symbols: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    trials: int | None = None,
    time_budget_s: float | None = None,
    plugins: Plugins | None = None,
    registry: ModelRegistry | None = None,
    progress: ProgressFn | None = None,
    cause: Event | None = None,
    clock: Clock | None = None,
) -> RetrainSummary:
    """Run the whole pipeline for every symbol and model; see the module docstring.

    ``time_budget_s`` bounds the whole run: each job gets an equal share of what is left when
    it starts. A job that fails is reported in its result (``error``) and a failed
    ``TrainingFinished`` event; the other jobs still run.
    """
    from autoopt.runtime import open_plugins
    from autoopt.tuning import pruning_budget_note  # imports optuna: only when a retrain runs

    clock = clock or SystemClock()
    plugins = plugins or open_plugins(config)
    registry = registry or open_registry(config)
    p = config.pipeline
    models = list(models or p.models)
    n_trials = int(trials or p.trials)
    budget = time_budget_s if time_budget_s is not None else p.time_budget_s
    note = pruning_budget_note(n_trials, pruning=p.pruning, pruner=p.pruner,
                               min_completed=p.min_completed_trials)
    if note is not None:
        log.warning(note)
    run_id = derived_event_id(cause.event_id, "retrain") if cause else new_event_id()
    started = clock.now_ns()
    t_start = time.perf_counter()
    storage = default_storage(config)
    configure_nats(config.nats, config.data_dir)  # what `optuna_storage = "nats"` reaches
    # A trainer that cannot load (e.g. a broken torch for "tft") fails only its own jobs; the
    # other models still run. Only when no requested trainer loads is the run refused up front.
    trainers: dict[str, Trainer | PluginError] = {}
    for m in models:
        try:
            trainers[m] = plugins.trainer(m)
        except PluginError as exc:
            log.error("retrain: trainer %r unavailable: %s", m, exc)
            trainers[m] = exc
    if all(isinstance(t, PluginError) for t in trainers.values()):
        raise next(iter(trainers.values()))  # type: ignore[misc]
    validator = plugins.component("validator", p.validator)
    feature_set = plugins.component("feature_set", p.feature_set)
    policy = validation_policy(p.data_policy)
    src = plugins.data_source_for(source)
    bars = await load_bars(src, source, symbols, event_log, batch_rows=p.ingest_batch_rows,
                           clock=clock, policy=policy)
    order = list(symbols) if symbols else list(bars)
    jobs_left = len(order) * len(models)
    n_lanes = max(1, int(p.parallel_symbols))
    lanes = asyncio.Semaphore(n_lanes)

    def share_of_budget() -> float | None:
        """A job's share of the time budget: what is left, over the jobs left per lane."""
        if budget is None:
            return None
        rounds = math.ceil(max(jobs_left, 1) / n_lanes)
        return max(1.0, (budget - (time.perf_counter() - t_start)) / rounds)

    async def one_symbol(symbol: str) -> list[ModelResult]:
        nonlocal jobs_left
        out: list[ModelResult] = []
        t0 = time.perf_counter()
        try:
            if symbol not in bars:
                raise DataError(f"{symbol}: source {source!r} returned no bars for it")
            frame, _ = bars[symbol]
            grid_frame = evidence_bars(config, frame)  # with a grid: the bars before its boundary
            frame = training_bars(frame, p.train_window_bars)
            ds = await asyncio.to_thread(build_dataset, symbol, frame, feature_set, p.label, policy)
            gds = None if grid_frame is None else await asyncio.to_thread(
                build_dataset, symbol, grid_frame, feature_set, p.label, policy)
            scope = _Events(event_log, run_id, cause, clock, f"{symbol}/release")
            history, resumed = await _finish_pending(config, symbol, ds, event_log, registry,
                                                     scope)
        except Exception as exc:  # one symbol's bad data must not stop the others
            log.error("retrain %s: dataset or pending release failed: %s", symbol, exc)
            for model in models:
                out.append(_failed(symbol, model, exc, t0))
                jobs_left -= 1
            return out
        for model in models:
            t0 = time.perf_counter()
            own = history.verdicts.get(
                derived_event_id(run_id, f"{symbol}/{model}/model.verdict"))
            if model in resumed or own is not None:  # decided by an earlier attempt
                out.append(resumed.get(model) or _decided(
                    own, model, history, registry, p.gate.metric,  # type: ignore[arg-type]
                    "already decided by an earlier attempt of this run"))
                jobs_left -= 1
                continue
            events = _Events(event_log, run_id, cause, clock, f"{symbol}/{model}")
            try:
                trainer = trainers[model]
                if isinstance(trainer, PluginError):
                    raise trainer
                job = _Job(config, symbol, model, trainer, validator, ds, plugins, registry,
                           events, run_id, storage, share_of_budget(), n_trials, clock,
                           progress, evidence=gds)
                job.join = joinspec.base_spec(config, symbol=symbol, model=model,
                                              source=source, bars=bars[symbol][0])
                out.append(await job.run())
            except Exception as exc:  # one job's failure must not stop the nightly run
                log.error("retrain %s/%s failed: %s\n%s", symbol, model, exc,
                          traceback.format_exc())
                await events.append(
                    TrainingFinished, "training.finished", symbol=symbol, run_id=run_id,
                    trainer=model, succeeded=False, error=f"{type(exc).__name__}: {exc}",
                    duration_s=time.perf_counter() - t0,
                )
                out.append(_failed(symbol, model, exc, t0))
            jobs_left -= 1
        return out

    async def in_lane(symbol: str) -> list[ModelResult]:
        async with lanes:
            return await one_symbol(symbol)

    # symbols side by side (`pipeline.parallel_symbols`); results in the symbols' order
    results = [r for rs in await asyncio.gather(*(in_lane(s) for s in order)) for r in rs]
    return RetrainSummary(
        run_id=run_id, started_at=iso(started), finished_at=iso(clock.now_ns()), source=source,
        results=results, global_best=global_best(results),
    )


__all__ = ["Progress", "ProgressFn", "default_storage", "load_bars", "run_retrain", "study_name"]
