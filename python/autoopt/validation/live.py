"""Live baselines on the live scale, and the degradation test with hysteresis.

Why: the old degradation rule compared live figures with cross-validated ones on another scale
(an annualised per-bar Sharpe against a per-trade rolling one) and fired on every report while
below it. Here each release records the return distribution it expects live, in the units the
engine client reports (`autoopt.client.engine.rolling_metrics`: ``mean_return`` over the last
``n_trades`` net per-trade returns):

* per period: mean and standard deviation of the out-of-sample per-bar net returns;
* per trade: a trade holds its position ``h = T / trades`` bars on average, so under
  independence its return has mean ``h·μ`` and standard deviation ``√h·σ``.

The test (windowed z-test on the reported window): ``z = (m − μ_trade) / (σ_trade / √n)`` for a
window of ``n`` trades with mean ``m``. Hysteresis: the state becomes *degraded* when
``z <= −z_enter`` with ``n >= min_trades`` (that crossing, and only it, asks for a retrain), and
returns to *normal* only when ``z >= −z_exit`` (``z_exit < z_enter``), so a metric hovering near
the threshold does not fire on every report. Pure functions; the state lives with the caller.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np

from autoopt.errors import ConfigError

LIVE_KEYS = ("live/period_mean", "live/period_std", "live/holding", "live/trade_mean",
             "live/trade_std")


class LiveTest(msgspec.Struct, frozen=True):
    statistic: float
    """z of the window's mean per-trade return against the release's expectation."""
    n: int
    degraded: bool
    """The state after this report."""
    entered: bool
    """True when this report moved the state from normal to degraded (the retrain trigger)."""
    exited: bool
    reason: str


def expected_live(returns: np.ndarray, n_trades: float) -> dict[str, float]:
    """The release's expected live distribution (keys `LIVE_KEYS`) from its out-of-sample
    per-period net returns and the trades they took."""
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size < 2:
        return {}
    mu, sd = float(r.mean()), float(r.std(ddof=1))
    holding = r.size / n_trades if n_trades > 0 else float(r.size)
    return {"live/period_mean": mu, "live/period_std": sd, "live/holding": holding,
            "live/trade_mean": mu * holding, "live/trade_std": sd * math.sqrt(holding)}


def live_test(
    expected_mean: float, expected_std: float, live_mean: float, n: int, *,
    degraded: bool, z_enter: float, z_exit: float, min_trades: int,
) -> LiveTest:
    """One report through the hysteresis test (see the module doc)."""
    if not 0 <= z_exit < z_enter:
        raise ConfigError(f"degradation: need 0 <= z_exit < z_enter, got {z_exit}, {z_enter}")
    if n < min_trades or not expected_std > 0 or not math.isfinite(live_mean):
        why = (f"{n} trades < minimum {min_trades}" if n < min_trades
               else "no spread in the expected distribution")
        return LiveTest(math.nan, n, degraded, False, False, why)
    z = (live_mean - expected_mean) / (expected_std / math.sqrt(n))
    if not degraded and z <= -z_enter:
        return LiveTest(z, n, True, True, False, f"z {z:.2f} <= -{z_enter}: entered degraded")
    if degraded and z >= -z_exit:
        return LiveTest(z, n, False, False, True, f"z {z:.2f} >= -{z_exit}: back to normal")
    state = "degraded" if degraded else "normal"
    return LiveTest(z, n, degraded, False, False,
                    f"z {z:.2f}: stays {state} (enter <= -{z_enter}, exit >= -{z_exit})")


__all__ = ["LIVE_KEYS", "LiveTest", "expected_live", "live_test"]
