"""Performance-degradation policy: retrain when live metrics fall from the champion's baseline.

On each MetricsReported of a symbol (its ``window`` label equal to ``source_window`` when set; its
``release_id``, when set, equal to the champion), the configured metrics are appended to a window
of the last ``window`` reports. Once the window is full, each metric's mean over the window is
compared with the baseline:

    drop = (baseline - recent) / |baseline|        (rise instead, for ``lower_is_better``)

and the policy fires when any metric's drop is beyond ``threshold`` (strictly greater).

Baseline: the champion's release metrics (ModelReleased.metrics); metrics the release did not
report take the mean of the first full window after the release (that window is then consumed, so
the next evaluation looks at fresh reports). Without any release, the first full window is the
baseline. A baseline of 0 cannot express a relative drop; that metric is skipped and said so.

**Live test** (takes precedence): when the champion's release recorded its expected live
distribution (``live/trade_mean``, ``live/trade_std``: `autoopt.validation.live`) and a report
carries the engine client's ``mean_return`` and ``n_trades``, the report is tested on the live
scale instead: z of the window's mean per-trade return against the expectation, with
hysteresis (enter at z <= -``live_z_enter``, exit at z >= -``live_z_exit``, at least
``live_min_trades`` trades). Only the entering report asks for a retrain; every report records
the statistic and both thresholds (``held.degradation.live``). The relative-drop rule above
remains for releases recorded without a live baseline.
"""

from __future__ import annotations

import math
from typing import Any

from autoopt.core.commands import Held
from autoopt.core.context import Ctx
from autoopt.core.policies.guards import request_retrain
from autoopt.core.state import SymbolState
from autoopt.events import MetricsReported
from autoopt.validation.live import live_test


def _live(ctx: Ctx, sym: SymbolState, ev: MetricsReported) -> bool:
    """The live test (module doc); False when the release or the report lacks its inputs."""
    cfg = ctx.eff(ev.symbol).degradation
    info = sym.release(sym.champion)
    if info is None or sym.champion is None:
        return False
    mu, sd = info.metrics.get("live/trade_mean"), info.metrics.get("live/trade_std")
    m, n = ev.metrics.get("mean_return"), ev.metrics.get("n_trades")
    if mu is None or sd is None or m is None or n is None:
        return False
    was = sym.live_degraded == sym.champion
    t = live_test(mu, sd, m, int(n), degraded=was, z_enter=cfg.live_z_enter,
                  z_exit=cfg.live_z_exit, min_trades=cfg.live_min_trades)
    sym.live_degraded = sym.champion if t.degraded else None
    details: dict[str, Any] = {
        "test": "live z (window mean per-trade return vs the release's expectation)",
        "statistic": None if math.isnan(t.statistic) else t.statistic, "n_trades": t.n,
        "z_enter": -cfg.live_z_enter, "z_exit": -cfg.live_z_exit,
        "min_trades": cfg.live_min_trades, "expected_mean": mu, "expected_std": sd,
        "live_mean": m, "state": "degraded" if t.degraded else "normal", "reason": t.reason,
        "champion": sym.champion,
    }
    if t.entered:
        request_retrain(ctx, sym, "degradation", details)
    else:
        ctx.emit(Held, ev.symbol, "held.degradation.live", "degradation", details)
    return True


def on_metrics(ctx: Ctx, ev: MetricsReported) -> None:
    cfg = ctx.eff(ev.symbol).degradation
    if not cfg.enabled:
        return
    if cfg.source_window is not None and ev.window != cfg.source_window:
        return
    sym = ctx.sym(ev.symbol)
    if ev.release_id is not None and sym.champion is not None and ev.release_id != sym.champion:
        return
    if _live(ctx, sym, ev):
        return
    values: dict[str, float] = {}
    for name in cfg.metrics:
        v = ev.metrics.get(name)
        if v is not None and math.isfinite(v):
            values[name] = float(v)
    if not values:
        return
    sym.window.append(values)
    if len(sym.window) > cfg.window:
        del sym.window[: len(sym.window) - cfg.window]
    if len(sym.window) < cfg.window:
        return

    recent: dict[str, float] = {}
    for name in cfg.metrics:
        col = [w[name] for w in sym.window if name in w]
        if col:
            recent[name] = math.fsum(col) / len(col)

    fresh = {n: v for n, v in recent.items() if n not in sym.baseline}
    if fresh:
        sym.baseline.update(fresh)
        sym.baseline_source.update({n: "window" for n in fresh})
        sym.window = []
        ctx.emit(Held, ev.symbol, "held.degradation.baseline", "degradation", {
            "baseline": dict(sorted(sym.baseline.items())),
            "from_window": sorted(fresh),
            "window": cfg.window,
            "champion": sym.champion,
        })
        return

    metrics: dict[str, Any] = {}
    degraded: list[str] = []
    lower = set(cfg.lower_is_better)
    for name, r in recent.items():
        b = sym.baseline[name]
        if b == 0.0:
            metrics[name] = {"baseline": b, "recent": r, "drop": None, "skipped": "zero baseline"}
            continue
        drop = (r - b) / abs(b) if name in lower else (b - r) / abs(b)
        metrics[name] = {
            "baseline": b,
            "recent": r,
            "drop": drop,
            "source": sym.baseline_source.get(name, "release"),
        }
        if drop > cfg.threshold:
            degraded.append(name)
    details: dict[str, Any] = {
        "metrics": metrics,
        "degraded": degraded,
        "threshold": cfg.threshold,
        "window": cfg.window,
        "champion": sym.champion,
    }
    if degraded:
        request_retrain(ctx, sym, "degradation", details)
    else:
        ctx.emit(Held, ev.symbol, "held.degradation", "degradation", details)


__all__ = ["on_metrics"]
