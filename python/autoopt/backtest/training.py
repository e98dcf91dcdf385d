"""Retrains for the policy backtest: the real pipeline steps on the data available at a moment,
content-addressed and shared between policies.

A retrain at cut ``t`` for a symbol sees the bars with ``ts <= t`` only. It runs in three
stages, all with `autoopt.pipeline.candidate` (the steps `autoopt retrain` and the service run):

1. **fit** (select features, tune with Optuna, validate the challenger, the holdout, CPCV, PBO):
   keyed by the symbol, the bars it learns from, the pipeline config, the seed and the trial
   budget. Without a calendar grid those are the bars up to the cut, so every cut is its own
   fit; with ``[pipeline.validation] grid`` they are the bars before the last grid boundary
   (`autoopt.pipeline.evidence.evidence_bars`), so every retrain whose cut falls in the same
   block (a week of nightly retrains, the weekly one, a drift one) shares one fit;
2. **judge** (score the policy's champion recipe on the same folds, run the gate): keyed by the
   fit and the champion; no model is fitted here;
3. **final** (fit the release on every training bar up to the cut): keyed by the fit and the
   cut, and only computed when the gate passed.

Results are kept in memory and on disk (``<cache dir>/<key>.msgpack``, written atomically), so a
rerun of the same backtest recomputes nothing. Stages run in a thread, or with ``jobs > 1`` in
worker processes; requests and results cross the process boundary as msgpack bytes. Models are
exchanged in their native files (LightGBM text), never pickled. ``share=False`` (the peer a
benchmark compares with) computes every stage of every retrain, nothing cached.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
import polars as pl

from autoopt.backtest.stages import StageStore
from autoopt.config import Config
from autoopt.errors import AutooptError
from autoopt.pipeline.evidence import Evidence, development, grid_of, scheme_task
from autoopt.validation.cv import grid_boundary

_ENC = msgspec.msgpack.Encoder()


class Recipe(msgspec.Struct, frozen=True, kw_only=True):
    """A released model: enough to refit it on other folds and to load it."""

    release_id: str
    trainer: str
    model_type: str
    params: dict[str, Any]
    features: list[str]
    files: dict[str, bytes]
    metrics: dict[str, float]
    data_end: int
    sha256: str


class Fitted(msgspec.Struct, frozen=True, kw_only=True):
    """Stage 1's result: a tuned, validated challenger (or why it could not be fitted)."""

    key: str
    error: str | None = None
    params: dict[str, Any] = {}
    names: list[str] = []
    selected_gain: dict[str, float] = {}
    selected_perm: dict[str, float] = {}
    study: str = ""
    best_value: float = 0.0
    best_trial: int = 0
    trial_states: list[str] = []
    fold_metrics: list[dict[str, float]] = []
    returns: list[float] = []
    metrics: dict[str, float] = {}
    compute_s: float = 0.0
    cpu_s: float = 0.0
    """CPU seconds of the worker process on this stage (what a benchmark's work estimate uses)."""
    evidence: Evidence | None = None
    """The gate's holdout, CPCV, PBO and ledger evidence (`autoopt.pipeline.evidence`)."""


class Final(msgspec.Struct, frozen=True, kw_only=True):
    """Stage 3's result: the release's files, fitted on every training bar up to the cut."""

    key: str
    files: dict[str, bytes] = {}
    sha256: str = ""
    data_end: int = 0
    model_type: str = ""
    error: str | None = None
    compute_s: float = 0.0
    cpu_s: float = 0.0


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """A retrain's result: the verdict, and the release when the gate passed."""

    key: str
    passed: bool
    reasons: list[str]
    metrics: dict[str, float]
    release: Recipe | None = None
    error: str | None = None
    compute_s: float = 0.0
    """Seconds of every stage (each counted in full even when shared, so a policy's compute
    does not depend on what other policies asked for)."""
    cpu_s: float = 0.0


class _Request(msgspec.Struct, frozen=True, kw_only=True):
    stage: str
    key: str
    symbol: str
    cut_ns: int
    bars: bytes
    config: dict[str, Any]
    trials: int
    fitted: Fitted | None = None
    champion: Recipe | None = None
    boundary: int = 0
    """With a grid: the boundary the evidence ends at (the fit and judge stages' rows)."""


def digest(*parts: Any) -> str:
    return hashlib.sha256(msgspec.msgpack.encode(list(parts), order="deterministic")).hexdigest()


def bars_ipc(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_ipc(buf)
    return buf.getvalue()


class SymbolBars:
    """Each symbol's bars as the stages need them: Arrow IPC bytes for a stage's request, and
    one contiguous array for content keys. Built once per backtest and shared by the model
    retrains and the risk re-tunes."""

    def __init__(self, bars: dict[str, pl.DataFrame]) -> None:
        self.ipc = {s: bars_ipc(f) for s, f in bars.items()}
        # rows as one contiguous array per symbol: a key hashes the rows it may see (ts <= cut)
        # and nothing after, so changing later bars never changes an earlier key
        self.rows = {s: (f["ts"].to_numpy().astype(np.int64), np.ascontiguousarray(
            f.select("ts", "open", "high", "low", "close", "volume").cast(pl.Float64)
            .to_numpy())) for s, f in bars.items()}

    def ts(self, symbol: str) -> np.ndarray:
        return self.rows[symbol][0]

    def seen(self, symbol: str, end: int, *, before: bool = False) -> str:
        """Digest of the symbol's rows up to ``end`` (``ts <= end``, or ``< end``)."""
        ts, rows = self.rows[symbol]
        stop = int(np.searchsorted(ts, end, side="left" if before else "right"))
        return hashlib.sha256(rows[:stop].tobytes()).hexdigest()


# ----------------------------------------------------------------------- the stages (workers)

_PLUGINS: dict[str, Any] = {}


def plugins_of(config: Config) -> Any:
    """The plugins of this process for ``config`` (opened once per plugin settings: a worker
    process runs many stages, model retrains and risk re-tunes alike)."""
    from autoopt.runtime import open_plugins

    key = digest(msgspec.to_builtins(config.plugins))
    if key not in _PLUGINS:
        _PLUGINS[key] = open_plugins(config)
    return _PLUGINS[key]


_DATASETS: dict[str, Any] = {}
_DATASETS_KEPT = 8


def _dataset(req: _Request, config: Config, plugins: Any, final: bool = False) -> Any:
    """The rows a stage learns from: the evidence's (the bars before the grid boundary with a
    grid, else every bar up to the cut) or, ``final``, every training bar up to the cut. Kept
    for the next stage in this process (a judge stage rebuilds what its fit stage built
    otherwise; with a grid, every retrain in the block reuses it)."""
    from autoopt.pipeline.dataset import build_dataset, training_bars, validation_policy
    from autoopt.pipeline.evidence import evidence_bars

    grid = req.boundary if not final and grid_of(config) is not None else 0
    key = digest(req.symbol, req.cut_ns if not grid else None, grid,
                 hashlib.sha256(req.bars).hexdigest(), msgspec.to_builtins(config.pipeline))
    if key in _DATASETS:
        return _DATASETS[key]
    frame = pl.read_ipc(io.BytesIO(req.bars))
    frame = frame.filter(pl.col("ts") <= req.cut_ns)
    cut = evidence_bars(config, frame) if grid else None
    if cut is None:
        cut = training_bars(frame, config.pipeline.train_window_bars)
    elif grid_boundary(frame["ts"].to_numpy(), grid_of(config) or 1) != req.boundary:
        raise RuntimeError(f"{req.symbol}: grid boundary {req.boundary} is not the bars' own")
    fs = plugins.component("feature_set", config.pipeline.feature_set)
    ds = build_dataset(req.symbol, cut, fs, config.pipeline.label,
                       validation_policy(config.pipeline.data_policy))
    while len(_DATASETS) >= _DATASETS_KEPT:
        _DATASETS.pop(next(iter(_DATASETS)))
    _DATASETS[key] = ds
    return ds


def _fit(req: _Request, config: Config) -> Fitted:
    from autoopt.pipeline.candidate import fit_candidate

    plugins = plugins_of(config)
    t0 = time.perf_counter()
    model = config.pipeline.models[0]
    ds = _dataset(req, config, plugins)
    cand = fit_candidate(
        config, ds, plugins.trainer(model), plugins.component("validator", config.pipeline.validator),
        n_trials=req.trials, study_of=lambda feats: f"backtest.{req.key[:16]}")
    v = cand.validation
    return Fitted(
        key=req.key, params=dict(cand.tuned.params), names=list(cand.names),
        selected_gain=dict(cand.selection.gain), selected_perm=dict(cand.selection.permutation),
        study=cand.study, best_value=float(cand.tuned.best_value),
        best_trial=int(cand.tuned.best_trial),
        trial_states=[t.state for t in cand.tuned.trials],
        fold_metrics=[dict(f) for f in v.fold_metrics], returns=[float(x) for x in v.returns],
        metrics=dict(v.metrics), compute_s=time.perf_counter() - t0, evidence=cand.evidence)


def _judge(req: _Request, config: Config) -> Outcome:
    from autoopt.pipeline.candidate import judge, score_recipe, train_task

    fitted = req.fitted
    assert fitted is not None
    t0 = time.perf_counter()
    plugins = plugins_of(config)
    validator = plugins.component("validator", config.pipeline.validator)
    ds = _dataset(req, config, plugins)
    dev = development(config, ds)  # the champion is scored where the challenger was
    task = scheme_task(config, train_task(config, dev, n_trials=req.trials), dev)
    cand = _candidate(fitted, task, ds)
    champion = None
    note = ""
    if req.champion is not None:
        ch = req.champion
        if all(f in ds.feature_names for f in ch.features):
            ch_trainer = plugins.release_trainer(ch.trainer, ch.model_type)
            champion = score_recipe(config, ch_trainer, validator, task, ds, ch.params,
                                    ch.features)
        else:
            note = f"champion_unscorable: champion {ch.release_id} uses missing features"
    verdict, metrics = judge(config, cand, champion)
    reasons = [f"{r.code}: {r.message}" for r in verdict.reasons] + ([note] if note else [])
    return Outcome(key=req.key, passed=verdict.passed, reasons=reasons, metrics=metrics,
                   compute_s=time.perf_counter() - t0)


def _candidate(fitted: Fitted, task: Any, ds: Any) -> Any:
    """The `Candidate` a Fitted stands for (what `judge` reads)."""
    from autoopt.pipeline.candidate import Candidate
    from autoopt.pipeline.selection import FeatureSelection
    from autoopt.plugins.interfaces import TrialRecord, TuneResult, ValidationResult

    tuned = TuneResult(
        study_name=fitted.study, params=dict(fitted.params), best_value=fitted.best_value,
        best_trial=fitted.best_trial,
        trials=tuple(TrialRecord(number=i, state=s, params={}, value=None, duration_s=0.0)
                     for i, s in enumerate(fitted.trial_states)),
        objective="")
    validation = ValidationResult(fold_metrics=tuple(fitted.fold_metrics),
                                  returns=np.asarray(fitted.returns),
                                  metrics=dict(fitted.metrics))
    return Candidate(FeatureSelection(tuple(fitted.names), fitted.selected_gain,
                                      fitted.selected_perm),  # type: ignore[arg-type]
                     tuned, list(fitted.names), fitted.study, validation, task,
                     ds.select(fitted.names), fitted.evidence)


def _final(req: _Request, config: Config) -> Final:
    """The release: the tuned recipe fitted on every training row up to the cut
    (`autoopt.pipeline.candidate.final_model`'s fit)."""
    from autoopt.registry import artifact_set_sha256, sha256_bytes

    fitted = req.fitted
    assert fitted is not None
    t0 = time.perf_counter()
    plugins = plugins_of(config)
    trainer = plugins.trainer(config.pipeline.models[0])
    ds = _dataset(req, config, plugins, final=True)
    sel = ds.select(fitted.names)
    p = config.pipeline
    model = trainer.fit(sel.X, sel.y, dict(fitted.params), list(fitted.names), seed=p.seed,
                        threads=p.threads)
    files = model.to_files()
    shas = {name: sha256_bytes(blob) for name, blob in files.items()}
    return Final(key=req.key, files=dict(files), sha256=artifact_set_sha256(shas),
                 data_end=int(ds.data_range[1]), model_type=trainer.model_type,
                 compute_s=time.perf_counter() - t0)


def run_stage(payload: bytes) -> bytes:
    """A worker's entry point: one stage, msgpack in and out; failures come back as data."""
    req = msgspec.msgpack.decode(payload, type=_Request)
    config = msgspec.convert(req.config, Config)
    cpu0 = time.process_time()
    result: Fitted | Outcome | Final
    try:
        result = (_fit(req, config) if req.stage == "fit" else _judge(req, config)
                  if req.stage == "judge" else _final(req, config))
    except (AutooptError, ValueError, RuntimeError) as exc:
        msg = f"{type(exc).__name__}: {exc}"
        result = (Fitted(key=req.key, error=msg) if req.stage == "fit"
                  else Outcome(key=req.key, passed=False, reasons=[f"failed: {msg}"],
                               metrics={}, error=msg) if req.stage == "judge"
                  else Final(key=req.key, error=msg))
    return _ENC.encode(msgspec.structs.replace(result, cpu_s=time.process_time() - cpu0))


# --------------------------------------------------------------------------- the scheduler


class RetrainCache:
    """Shares retrains between policies: one computation per content key, in flight or done,
    in memory and on disk. ``jobs`` > 1 runs stages in that many worker processes."""

    def __init__(self, config: Config, bars: dict[str, pl.DataFrame], *, trials: int,
                 cache_dir: str | os.PathLike[str], jobs: int = 1, share: bool = True) -> None:
        self._config = config
        self._config_tree = msgspec.to_builtins(config)
        self.bars = SymbolBars(bars)
        """The bars as requests and keys use them (shared with the risk re-tunes)."""
        self._trials = trials
        self.store = StageStore(cache_dir, jobs=jobs)
        """The stage results (shared with the risk re-tunes: one pool, one limit)."""
        self._share = share
        self.hits = 0
        self.misses = 0
        self.computed: dict[str, int] = {"fit": 0, "judge": 0, "final": 0}
        """Stages computed here (not read from the cache), by stage."""
        self.computed_cpu_s: dict[str, float] = {"fit": 0.0, "judge": 0.0, "final": 0.0}
        """Their CPU seconds in the process that ran them, by stage."""
        self._grid = grid_of(config)
        self._unshared: dict[tuple[str, str], int] = {}
        p = config.pipeline
        self._pipeline_key = digest(msgspec.to_builtins(p), config.policy.drift.reference_max_rows)

    def plugins(self) -> Any:
        """The plugins of this process (the same ones the stages use)."""
        return plugins_of(self._config)

    def _seen(self, symbol: str, end: int, *, before: bool = False) -> str:
        """Digest of the symbol's rows up to ``end`` (``ts <= end``, or ``< end``): a key hashes
        the rows it may see and nothing after, so changing later bars never changes it."""
        return self.bars.seen(symbol, end, before=before)

    def boundary(self, symbol: str, cut_ns: int) -> int:
        """With a grid: the boundary the evidence of a retrain at ``cut_ns`` ends at (0 without
        a grid)."""
        if self._grid is None:
            return 0
        ts = self.bars.ts(symbol)
        stop = int(np.searchsorted(ts, cut_ns, side="right"))
        return grid_boundary(ts[max(0, stop - 65):stop], self._grid) if stop >= 2 else 0

    def fit_key(self, symbol: str, cut_ns: int) -> str:
        """The fit's content key: (symbol, the rows it learns from, pipeline config, seed,
        trials). With a grid the rows are those before the grid boundary (their first one
        is the data start), so every cut in one block has the same key; without, every row
        up to the cut."""
        b = self.boundary(symbol, cut_ns)
        if b:
            return digest("fit", symbol, "grid", b, self._seen(symbol, b, before=True),
                          self._pipeline_key, self._config.pipeline.seed, self._trials)
        return digest("fit", symbol, cut_ns, self._seen(symbol, cut_ns),
                      self._pipeline_key, self._config.pipeline.seed, self._trials)

    async def outcome(self, symbol: str, cut_ns: int, champion: Recipe | None,
                      owner: str = "") -> Outcome:
        """The verdict (and release) of a retrain of ``symbol`` at ``cut_ns`` against
        ``champion``: the fit (shared by every retrain with the same evidence), the judge
        (fit and champion) and, when the gate passed, the final fit (fit and cut).

        ``share=False`` (the peer a benchmark compares with): every stage of every call is
        computed, whatever was computed before, even by the same ``owner`` (the policy):
        the cache keys are salted with a per-(owner, symbol) counter (a rerun gives the same
        keys); the release ids are not, so a policy's decisions are the same either way."""
        fkey = self.fit_key(symbol, cut_ns)
        nonce = ""
        if not self._share:
            n = self._unshared.get((owner, symbol), 0)
            self._unshared[(owner, symbol)] = n + 1
            nonce = digest(owner, cut_ns, n)
        boundary = self.boundary(symbol, cut_ns)

        def cached(key: str) -> str:
            """The cache key of a content key: itself, or salted with the call's nonce when
            nothing is shared. Content keys alone name releases, so the ids (which seed the
            core's drift calibration) are the same shared or not."""
            return digest(key, nonce) if nonce else key

        def request(stage: str, key: str, **more: Any) -> Callable[[], _Request]:
            return lambda: _Request(stage=stage, key=key, symbol=symbol, cut_ns=cut_ns,
                                    bars=self.bars.ipc[symbol], config=self._config_tree,
                                    trials=self._trials, boundary=boundary, **more)

        fitted = await self._get(cached(fkey), Fitted, request("fit", cached(fkey)))
        if fitted.error is not None:
            return Outcome(key=fkey, passed=False, reasons=[f"failed: {fitted.error}"],
                           metrics={}, error=fitted.error, compute_s=fitted.compute_s)
        jkey = digest("judge", fkey, champion.release_id if champion else None)
        verdict = await self._get(cached(jkey), Outcome, request(
            "judge", cached(jkey), fitted=fitted, champion=champion))
        spent = fitted.compute_s + verdict.compute_s
        if not verdict.passed or verdict.error is not None:
            return msgspec.structs.replace(verdict, key=jkey, compute_s=spent)
        fin_key = digest("final", fkey, cut_ns, self._seen(symbol, cut_ns)) if boundary \
            else digest("final", fkey)
        final = await self._get(cached(fin_key), Final, request(
            "final", cached(fin_key), fitted=fitted))
        spent += final.compute_s
        if final.error is not None:
            return Outcome(key=jkey, passed=False, reasons=[f"failed: {final.error}"],
                           metrics=verdict.metrics, error=final.error, compute_s=spent)
        release = Recipe(
            release_id=f"bt-{digest(jkey, fin_key, final.sha256)[:20]}",
            trainer=self._config.pipeline.models[0], model_type=final.model_type,
            params=dict(fitted.params), features=list(fitted.names), files=dict(final.files),
            metrics=dict(verdict.metrics), data_end=final.data_end, sha256=final.sha256)
        return msgspec.structs.replace(verdict, key=jkey, release=release, compute_s=spent)

    async def _get(self, key: str, kind: type[Any], request: Callable[[], _Request]) -> Any:
        stage: list[str] = []

        def payload() -> bytes:
            req = request()
            stage.append(req.stage)
            return _ENC.encode(req)

        value = await self.store.get(key, kind, payload, run_stage)
        if stage:  # the payload was built: this call computed it
            self.misses += 1
            self.computed[stage[0]] += 1
            self.computed_cpu_s[stage[0]] += value.cpu_s
        else:
            self.hits += 1
        return value

    def close(self) -> None:
        self.store.close()


__all__ = ["Final", "Fitted", "Outcome", "Recipe", "RetrainCache", "SymbolBars", "bars_ipc", "digest",
           "run_stage"]
