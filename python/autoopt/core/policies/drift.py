"""Drift policy: the champion's inputs or behaviour moved away from what it was trained on.

Feature drift (PSI, KS)
    The champion's training reference is the FeatureBatch whose ``release_id`` is the champion's
    release (published by whoever trains or releases it; several batches concatenate; at most
    ``reference_max_rows`` rows are kept, a deterministic even stride). Live FeatureBatches of the
    same ``feature_set`` (no ``release_id``) are gathered per column (the columns both share,
    narrowed to ``features`` when set) until ``min_rows`` rows, then every column is compared
    with ``autoopt.drift.psi`` (``psi_bins`` bins) and ``autoopt.drift.ks_2samp``, and the
    gathered rows are dropped (tumbling windows). Any PSI > ``psi_threshold`` fires "drift.psi";
    else any KS p-value < ``ks_pvalue`` fires "drift.ks"; else "held.drift". Non-finite values
    are left out of both samples. With ``calibration = "block_bootstrap"`` (the default) a
    column must also pass thresholds calibrated by block bootstrap of the reference for windows
    of this many rows (`autoopt.drift_calibration`; PSI above its calibrated quantile, the KS
    statistic above its own), so stationary autocorrelated features do not fire: the
    configured thresholds guard the effect size, the calibrated ones the serial dependence.
    The calibrated thresholds are computed once per reference and window size and reported.

Stream drift (ADWIN, Page-Hinkley, plugin detectors)
    Every streaming detector in ``detectors`` (a factory resolved at start, `ctx.detectors`:
    ``autoopt.drift.ADWIN(delta=adwin_delta)``, ``autoopt.drift.PageHinkley(...)`` or a plugin's,
    built with `autoopt.core.detectors.detector_params`) watches the prediction stream
    (SignalEmitted.confidence) and the outcome stream (TradeOutcome return, or 1.0/0.0 for a
    winning/losing trade with ``outcome_value = "hit"``) of the champion (events naming another
    release are skipped), one detector per stream, in name order. A detection fires
    "drift.<name>" ("drift.adwin"...) and restarts that detector from scratch, so one change
    fires once. Detectors are checkpointed with their ``to_bytes`` and restored by their
    factory's ``from_bytes``.

Reported drift
    DriftReported(drifted=true) from a detector not named "autoopt..." fires "drift.reported" when
    ``external`` is on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from autoopt.config import DriftPolicy
from autoopt.core.commands import Held
from autoopt.core.context import Ctx
from autoopt.core.detectors import WINDOW_DETECTORS, detector_params
from autoopt.core.policies.guards import request_retrain
from autoopt.core.state import SymbolState
from autoopt.events import DriftReported, FeatureBatch, SignalEmitted, TradeOutcome


def _on_stream(ctx: Ctx, symbol: str, stream: str, value: float, release_id: str | None) -> None:
    cfg = ctx.eff(symbol).drift
    if not cfg.enabled or stream not in cfg.streams or not math.isfinite(value):
        return
    sym = ctx.sym(symbol)
    if release_id is not None and sym.champion is not None and release_id != sym.champion:
        return
    state = ctx.state
    for kind in sorted(set(cfg.detectors) - set(WINDOW_DETECTORS)):
        factory = ctx.detectors.factory(kind)
        name = f"{kind}.{stream}"
        det = state.detector(
            symbol, name, factory, lambda f=factory, k=kind: f.create(**detector_params(k, cfg))
        )
        counts = sym.detector_counts
        n = counts.get(name, 0) + 1
        counts[name] = n
        if det.update(value):
            state.reset_detector(symbol, name)
            details: dict[str, Any] = {
                "stream": stream,
                "detector": kind,
                "value": value,
                "n": n,
                "champion": sym.champion,
            }
            request_retrain(ctx, sym, f"drift.{kind}", details)


def on_signal(ctx: Ctx, ev: SignalEmitted) -> None:
    _on_stream(ctx, ev.symbol, "prediction", float(ev.confidence), ev.release_id)
    _cbpe(ctx, ev)


def _cbpe(ctx: Ctx, ev: SignalEmitted) -> None:
    """Confidence-based performance estimation of the champion (`autoopt.validation.cbpe`):
    every ``cbpe_window`` of its non-flat signals, the estimated hit rate and its standard
    error against the release's cross-validated accuracy; tumbling windows."""
    from autoopt.validation.cbpe import from_sums, hit_probability

    cfg = ctx.eff(ev.symbol).degradation
    if not (cfg.enabled and cfg.cbpe) or ev.side == "flat" or not math.isfinite(ev.confidence):
        return
    sym = ctx.sym(ev.symbol)
    if sym.champion is None or (ev.release_id is not None and ev.release_id != sym.champion):
        return
    c = hit_probability(ev.confidence)
    sym.cbpe_sum += c
    sym.cbpe_var += c * (1.0 - c)
    sym.cbpe_n += 1
    if sym.cbpe_n < cfg.cbpe_window:
        return
    est = from_sums(sym.cbpe_sum, sym.cbpe_var, sym.cbpe_n)
    sym.cbpe_sum, sym.cbpe_var, sym.cbpe_n = 0.0, 0.0, 0
    info = sym.release(sym.champion)
    expected = info.metrics.get("accuracy") if info is not None else None
    if expected is None:  # a release without its accuracy: nothing to compare, nothing decided
        return
    z = (est.estimate - expected) / est.se if est.se > 0 else None
    details: dict[str, Any] = {
        "metric": "cbpe_accuracy", "estimate": est.estimate, "se": est.se, "n": est.n,
        "expected": expected, "statistic": z, "z_threshold": -cfg.cbpe_z,
        "champion": sym.champion,
    }
    if z is not None and z <= -cfg.cbpe_z:
        request_retrain(ctx, sym, "performance.cbpe", details)
    else:
        ctx.emit(Held, ev.symbol, "held.cbpe", "performance", details)


def on_outcome(ctx: Ctx, ev: TradeOutcome) -> None:
    cfg = ctx.eff(ev.symbol).drift
    r = float(ev.return_)
    value = (1.0 if r > 0.0 else 0.0) if cfg.outcome_value == "hit" else r
    _on_stream(ctx, ev.symbol, "outcome", value, ev.release_id)


def on_reported(ctx: Ctx, ev: DriftReported) -> None:
    cfg = ctx.eff(ev.symbol).drift
    if not (cfg.enabled and cfg.external and ev.drifted) or ev.detector.startswith("autoopt"):
        return
    sym = ctx.sym(ev.symbol)
    request_retrain(ctx, sym, "drift.reported", {
        "stream": ev.stream,
        "statistic": ev.statistic,
        "value": float(ev.value),
        "threshold": float(ev.threshold),
        "detector": ev.detector,
        "feature": ev.feature,
    })


def on_features(ctx: Ctx, ev: FeatureBatch) -> None:
    """Gather live rows; evaluate PSI/KS against the champion's reference every ``min_rows``."""
    cfg = ctx.eff(ev.symbol).drift
    if not cfg.enabled or not ("psi" in cfg.detectors or "ks" in cfg.detectors):
        return
    sym = ctx.sym(ev.symbol)
    ref = sym.reference(sym.champion)
    if ref is None or ref.feature_set != ev.feature_set or ev.n_rows == 0:
        return
    wanted = set(ev.columns) & set(ref.columns)
    if cfg.features is not None:
        wanted &= set(cfg.features)
    columns = sorted(wanted)
    if not columns:
        return
    if sym.buffer_columns != columns or sym.buffer_feature_set != ev.feature_set:
        sym.buffer_feature_set = ev.feature_set
        sym.buffer_columns = columns
        sym.buffer_values = [b""] * len(columns)
        sym.buffer_rows = 0
    arrays = ev.arrays()
    sym.buffer_values = [
        old + np.ascontiguousarray(arrays[c], dtype="<f8").tobytes()
        for old, c in zip(sym.buffer_values, columns, strict=True)
    ]
    sym.buffer_rows += ev.n_rows
    if sym.buffer_rows < cfg.min_rows:
        return
    _evaluate(ctx, sym, cfg, ref.columns, ref.values)


def _evaluate(
    ctx: Ctx, sym: SymbolState, cfg: DriftPolicy, ref_cols: list[str], ref_vals: list[bytes]
) -> None:
    from autoopt import drift

    psi_by: dict[str, float] = {}
    ks_by: dict[str, dict[str, float]] = {}
    calibrated: dict[str, list[float]] = {}
    ref_index = {c: i for i, c in enumerate(ref_cols)}
    tests = ("psi" in cfg.detectors) + ("ks" in cfg.detectors)
    alpha = cfg.false_alarm_rate / max(1, tests * len(sym.buffer_columns))
    reference = sym.reference(sym.champion)
    for col, raw in zip(sym.buffer_columns, sym.buffer_values, strict=True):
        cur = np.frombuffer(raw, dtype="<f8")
        ref = np.frombuffer(ref_vals[ref_index[col]], dtype="<f8")
        cur = cur[np.isfinite(cur)]
        ref = ref[np.isfinite(ref)]
        if len(cur) < 2 or len(ref) < 2:
            continue
        if cfg.calibration == "block_bootstrap" and reference is not None and len(ref) >= 4:
            key = f"{col}|{len(cur)}|{alpha:.6g}"
            if key not in reference.thresholds:
                from autoopt.drift_calibration import calibrate

                p_thr, k_thr, block = calibrate(
                    ref, len(cur), alpha=alpha, samples=cfg.bootstrap_samples,
                    bins=cfg.psi_bins, seed_key=f"{reference.release_id}|{col}")
                reference.thresholds[key] = [p_thr, k_thr, float(block)]
            calibrated[col] = reference.thresholds[key]
        if "psi" in cfg.detectors:
            psi_by[col] = float(drift.psi(ref, cur, bins=cfg.psi_bins))
        if "ks" in cfg.detectors:
            res = drift.ks_2samp(ref, cur)
            ks_by[col] = {"statistic": float(res.statistic), "pvalue": float(res.pvalue)}
    rows = sym.buffer_rows
    sym.buffer_values = [b""] * len(sym.buffer_columns)
    sym.buffer_rows = 0
    psi_hit = sorted(c for c, v in psi_by.items() if v > cfg.psi_threshold
                     and (c not in calibrated or v > calibrated[c][0]))
    ks_hit = sorted(c for c, v in ks_by.items() if v["pvalue"] < cfg.ks_pvalue
                    and (c not in calibrated or v["statistic"] > calibrated[c][1]))
    details: dict[str, Any] = {
        "rows": rows,
        "reference_release": sym.champion,
        "psi": psi_by,
        "ks": ks_by,
        "psi_threshold": cfg.psi_threshold,
        "ks_pvalue_threshold": cfg.ks_pvalue,
        "drifted_psi": psi_hit,
        "drifted_ks": ks_hit,
        "calibration": cfg.calibration,
    }
    if calibrated:
        details["calibrated"] = {c: {"psi": v[0], "ks_statistic": v[1], "block": v[2]}
                                 for c, v in calibrated.items()}
        details["false_alarm_rate"] = cfg.false_alarm_rate
    if psi_by:
        details["psi_max"] = max(psi_by.values())
    if ks_by:
        details["ks_min_pvalue"] = min(v["pvalue"] for v in ks_by.values())
    if psi_hit:
        request_retrain(ctx, sym, "drift.psi", details)
    elif ks_hit:
        request_retrain(ctx, sym, "drift.ks", details)
    else:
        ctx.emit(Held, sym.symbol, "held.drift", "drift", details)


__all__ = ["on_features", "on_outcome", "on_reported", "on_signal"]
