"""Facts that move the guards and the champion: training runs, releases, promotions, rollbacks,
training references, and the timeouts that free a slot nobody reported back on.

Champion: with ``policy.champion_event == "promoted"`` (default; the pipeline appends
ModelReleased then ModelPromoted when the gate passes, and ModelWatcher follows promotions) a
ModelPromoted makes its release the champion; with ``"released"`` a ModelReleased already does. A
ModelRolledBack always moves the champion. Either way a release's metrics are remembered from its
ModelReleased and a release (or decision) starts the cooldown. A champion change resets the degradation window and
baseline (baseline := the release's metrics), the live drift buffer and the streaming detectors.
"""

from __future__ import annotations

import numpy as np

from autoopt.clock import NS_PER_S
from autoopt.core.commands import Expired
from autoopt.core.context import Ctx
from autoopt.core.state import MAX_REFERENCES, MAX_RELEASES, Reference, ReleaseInfo, SymbolState
from autoopt.events import (
    FeatureBatch,
    ModelPromoted,
    ModelReleased,
    ModelRolledBack,
    TrainingFinished,
    TrainingStarted,
)


def training_started(ctx: Ctx, ev: TrainingStarted) -> None:
    sym = ctx.sym(ev.symbol)
    sym.pending = None
    sym.running[ev.run_id] = ctx.now
    ctx.refresh_in_flight(sym)


def training_finished(ctx: Ctx, ev: TrainingFinished) -> None:
    sym = ctx.sym(ev.symbol)
    sym.running.pop(ev.run_id, None)
    ctx.refresh_in_flight(sym)


def set_champion(ctx: Ctx, sym: SymbolState, release_id: str) -> None:
    if sym.champion == release_id:
        return
    sym.champion = release_id
    metrics = ctx.eff(sym.symbol).degradation.metrics
    info = sym.release(release_id)
    sym.window = []
    sym.baseline = {}
    sym.baseline_source = {}
    if info is not None:
        for name in metrics:
            value = info.metrics.get(name)
            if value is not None and np.isfinite(value):
                sym.baseline[name] = float(value)
                sym.baseline_source[name] = "release"
    _clear_buffer(sym)
    ctx.state.reset_detectors(sym.symbol)


def _clear_buffer(sym: SymbolState) -> None:
    sym.buffer_feature_set = ""
    sym.buffer_columns = []
    sym.buffer_values = []
    sym.buffer_rows = 0


def model_released(ctx: Ctx, ev: ModelReleased) -> None:
    sym = ctx.sym(ev.symbol)
    info = ReleaseInfo(
        release_id=ev.release_id,
        metrics={k: float(v) for k, v in ev.metrics.items()},
        released_ns=ctx.now,
    )
    sym.releases = [r for r in sym.releases if r.release_id != ev.release_id] + [info]
    if len(sym.releases) > MAX_RELEASES:
        keep = sym.releases[-MAX_RELEASES:]
        champ = sym.release(sym.champion)
        if champ is not None and champ not in keep:
            keep = [champ] + keep[1:]
        sym.releases = keep
    sym.last_retrain_ns = ctx.now
    if ctx.policy.champion_event == "released":
        set_champion(ctx, sym, ev.release_id)


def model_promoted(ctx: Ctx, ev: ModelPromoted) -> None:
    set_champion(ctx, ctx.sym(ev.symbol), ev.release_id)


def model_rolled_back(ctx: Ctx, ev: ModelRolledBack) -> None:
    set_champion(ctx, ctx.sym(ev.symbol), ev.release_id)


def reference_batch(ctx: Ctx, ev: FeatureBatch) -> None:
    """Store (a deterministic stride sample of) a release's training reference."""
    assert ev.release_id is not None
    sym = ctx.sym(ev.symbol)
    cap = ctx.eff(ev.symbol).drift.reference_max_rows
    cols = ev.arrays()
    names = sorted(ev.columns)
    old = sym.reference(ev.release_id)
    arrays = {n: cols[n] for n in names}
    if old is not None and old.feature_set == ev.feature_set and old.columns == names:
        for i, n in enumerate(names):
            arrays[n] = np.concatenate([np.frombuffer(old.values[i], dtype="<f8"), arrays[n]])
    rows = len(arrays[names[0]]) if names else 0
    if rows > cap:
        idx = np.linspace(0, rows - 1, cap).round().astype(np.int64)
        arrays = {n: a[idx] for n, a in arrays.items()}
        rows = cap
    ref = Reference(
        release_id=ev.release_id,
        feature_set=ev.feature_set,
        columns=names,
        values=[np.ascontiguousarray(arrays[n], dtype="<f8").tobytes() for n in names],
        rows=rows,
    )
    others = [r for r in sym.references if r.release_id != ev.release_id]
    while len(others) >= MAX_REFERENCES:
        victim = next((r for r in others if r.release_id != sym.champion), others[0])
        others.remove(victim)
    sym.references = others + [ref]
    if ev.release_id == sym.champion:
        _clear_buffer(sym)


def expire(ctx: Ctx) -> None:
    """Free in-flight slots whose retrain never started / never finished within the timeouts."""
    pol = ctx.policy
    if not ctx.data.in_flight:
        return
    for name in list(ctx.data.in_flight):
        sym = ctx.data.symbols[name]
        p = sym.pending
        if p is not None and pol.pending_timeout_s is not None:
            timeout = int(round(pol.pending_timeout_s * NS_PER_S))
            if ctx.now - p.decided_ns >= timeout:
                ctx.emit(Expired, name, "expired.pending", p.reason, {
                    "pending_id": p.id,
                    "decided_ns": p.decided_ns,
                    "timeout_s": pol.pending_timeout_s,
                })
                sym.pending = None
        if sym.running and pol.running_timeout_s is not None:
            timeout = int(round(pol.running_timeout_s * NS_PER_S))
            for run_id, started in sorted(sym.running.items(), key=lambda kv: (kv[1], kv[0])):
                if ctx.now - started >= timeout:
                    ctx.emit(Expired, name, "expired.running", "training", {
                        "run_id": run_id,
                        "started_ns": started,
                        "timeout_s": pol.running_timeout_s,
                    })
                    del sym.running[run_id]
        ctx.refresh_in_flight(sym)


__all__ = [
    "expire",
    "model_promoted",
    "model_released",
    "model_rolled_back",
    "reference_batch",
    "set_champion",
    "training_finished",
    "training_started",
]
