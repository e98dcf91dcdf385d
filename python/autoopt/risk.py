"""Risk overlays and their evaluation: stops, volatility-targeted sizing, a drawdown limit,
and portfolio weights.

Why here and not in a plugin: the simulation is the shared definition of what a risk parameter
*means*; tuners (plugins) search over it, the service applies what they choose.

Timing (no look-ahead): ``positions[t]`` is the model's direction decided at the close of bar t
and held over bar t+1. Size at t uses returns up to t. A stop is checked against bar t+1's
high/low: a long stopped out at ``entry - k × ATR[t_entry]`` earns exactly that move (gaps
through the stop fill at the open); a position opened before the ATR is defined uses the first
ATR known after its entry. After the drawdown limit is hit, the overlay stays flat for
``halt_bars`` bars and then resumes with the peak reset to the current equity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from autoopt.errors import DataError


@dataclass(frozen=True, kw_only=True)
class RiskParams:
    """One point of the risk search space (0 disables a rule)."""

    stop_loss_atr: float = 0.0
    take_profit_atr: float = 0.0
    vol_target: float = 0.0
    """Annualised volatility the position is scaled to (0: always size 1)."""
    max_leverage: float = 1.0
    max_drawdown: float = 0.0
    """Equity drawdown (fraction) that halts trading (0: no limit)."""
    halt_bars: int = 0
    vol_window: int = 20

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> RiskParams:
        """Inverse of `as_dict` (event payloads carry every number as a float)."""
        ints = {"halt_bars", "vol_window"}
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise DataError(f"RiskParams: unknown parameters {sorted(unknown)}")
        return cls(**{k: int(v) if k in ints else float(v) for k, v in values.items()})


def _atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    from autoopt.features import atr

    return np.asarray(atr(high, low, close, period), dtype=np.float64)


def _trailing_vol(ret: np.ndarray, window: int) -> np.ndarray:
    """Std (ddof=1) of the last ``window`` returns up to and including t; NaN before that."""
    s = pl.Series(ret).rolling_std(window_size=window)
    return s.to_numpy()


def simulate(
    bars: pl.DataFrame,
    positions: np.ndarray,
    params: RiskParams,
    *,
    periods_per_year: float,
    cost_bps: float = 0.0,
) -> np.ndarray:
    """Per-bar net returns of ``positions`` under the overlay ``params`` (see module doc)."""
    for col in ("open", "high", "low", "close"):
        if col not in bars.columns:
            raise DataError(f"risk.simulate: bars lack column {col!r}")
    o, h, lo, c = (bars[col].to_numpy().astype(np.float64) for col in ("open", "high", "low", "close"))
    pos_in = np.asarray(positions, dtype=np.float64)
    n = c.size
    if pos_in.shape != (n,):
        raise DataError(f"risk.simulate: positions has shape {pos_in.shape}, bars have {n} rows")
    if n < 3:
        raise DataError("risk.simulate: need at least 3 bars")
    ret = np.zeros(n)
    ret[1:] = c[1:] / c[:-1] - 1.0
    atr = _atr(h, lo, c) if (params.stop_loss_atr or params.take_profit_atr) else np.zeros(n)
    if params.vol_target > 0:
        vol = _trailing_vol(ret, params.vol_window) * math.sqrt(periods_per_year)
        size = np.where(np.isfinite(vol) & (vol > 0), params.vol_target / np.maximum(vol, 1e-12), 0.0)
        size = np.minimum(size, params.max_leverage)
    else:
        size = np.ones(n)
    cost = cost_bps / 1e4
    out = np.zeros(n)
    held = 0.0  # exposure carried into the current bar
    entry_price = math.nan
    entry_atr = math.nan
    stopped_dir = 0.0  # direction stopped out; stays flat until the model's direction changes
    equity = peak = 1.0
    halted_until = -1
    for t in range(n - 1):
        want = pos_in[t] * size[t]
        direction = math.copysign(1.0, pos_in[t]) if pos_in[t] != 0 else 0.0
        if stopped_dir and direction == stopped_dir:
            want = 0.0
        elif direction != stopped_dir:
            stopped_dir = 0.0
        if t < halted_until:
            want = 0.0
        turnover = abs(want - held)
        if want != 0 and (held == 0 or math.copysign(1.0, want) != math.copysign(1.0, held)):
            entry_price, entry_atr = c[t], atr[t]
        elif want != 0 and not np.isfinite(entry_atr):
            entry_atr = atr[t]  # entered during the ATR warm-up: use the first ATR known after
        r = want * ret[t + 1]
        if want != 0 and np.isfinite(entry_atr) and entry_atr > 0:
            d = math.copysign(1.0, want)
            exit_px = math.nan
            if params.stop_loss_atr:
                stop = entry_price - d * params.stop_loss_atr * entry_atr
                if (d > 0 and lo[t + 1] <= stop) or (d < 0 and h[t + 1] >= stop):
                    exit_px = min(o[t + 1], stop) if d > 0 else max(o[t + 1], stop)
            if math.isnan(exit_px) and params.take_profit_atr:
                target = entry_price + d * params.take_profit_atr * entry_atr
                if (d > 0 and h[t + 1] >= target) or (d < 0 and lo[t + 1] <= target):
                    exit_px = max(o[t + 1], target) if d > 0 else min(o[t + 1], target)
            if not math.isnan(exit_px):
                r = want * (exit_px / c[t] - 1.0)
                turnover += abs(want)  # the exit trade
                stopped_dir = d
                want = 0.0
        out[t + 1] = r - cost * turnover
        held = want
        equity *= 1.0 + out[t + 1]
        peak = max(peak, equity)
        if params.max_drawdown and 1.0 - equity / peak >= params.max_drawdown and t + 1 >= halted_until:
            halted_until = t + 1 + max(params.halt_bars, 1)
            peak = equity
    return out


def portfolio_weights(
    returns: np.ndarray, method: str = "risk_parity", *, shrinkage: float = 0.1, iterations: int = 500
) -> np.ndarray:
    """Long-only weights summing to 1 for a (periods × assets) return matrix.

    ``inverse_vol``: w ∝ 1/σ. ``min_variance``: argmin wᵀΣw on the simplex (projected gradient).
    ``risk_parity``: equal risk contributions (Spinu's fixed point). Σ is the sample covariance
    shrunk towards its diagonal by ``shrinkage``.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 3 or r.shape[1] < 1:
        raise DataError(f"portfolio_weights: need a (periods >= 3, assets >= 1) matrix, got {r.shape}")
    if not np.all(np.isfinite(r)):
        raise DataError("portfolio_weights: returns contain NaN or inf")
    if not 0.0 <= shrinkage <= 1.0:
        raise DataError(f"portfolio_weights: shrinkage must be in [0, 1], got {shrinkage}")
    cov = np.atleast_2d(np.cov(r, rowvar=False))
    cov = (1 - shrinkage) * cov + shrinkage * np.diag(np.diag(cov))
    sigma = np.sqrt(np.diag(cov))
    if np.any(sigma <= 0):
        raise DataError("portfolio_weights: an asset has zero variance")
    k = r.shape[1]
    if method == "inverse_vol":
        w = 1.0 / sigma
    elif method == "risk_parity":
        w = 1.0 / sigma
        for _ in range(iterations):
            marginal = cov @ w
            w_new = np.sqrt(w * (w @ marginal) / k / marginal)
            if np.max(np.abs(w_new - w)) < 1e-12:
                break
            w = w_new
    elif method == "min_variance":
        w = np.full(k, 1.0 / k)
        step = 1.0 / (2 * np.linalg.eigvalsh(cov).max())
        for _ in range(iterations):
            w = _project_simplex(w - step * 2 * cov @ w)
    else:
        raise DataError(f"portfolio_weights: unknown method {method!r} (inverse_vol, risk_parity, min_variance)")
    return w / w.sum()


def _project_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection onto {w >= 0, Σw = 1} (Duchi et al. 2008)."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u)
    rho = np.nonzero(u * np.arange(1, v.size + 1) > css - 1)[0][-1]
    theta = (css[rho] - 1) / (rho + 1.0)
    return np.maximum(v - theta, 0.0)
