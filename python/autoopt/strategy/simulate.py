"""The bar-by-bar strategy simulation: `StrategyParams` applied to a model's probabilities.

Two implementations of one loop: `reference_loop` (plain Python, the readable definition) and
the Rust kernel ``autoopt._native.simulate_strategy`` (what tuning runs: >= 50x faster on one
thread, benches/bench_risk.py). They must agree exactly on every input; a hypothesis property
test holds them to it (tests/test_strategy_sim.py). The semantics are documented once, in
`autoopt.strategy.params`; the indicators the loop reads (ATR, trailing volatility, the UTC day)
are computed here, with numpy/polars, from data up to each bar only, and handed to both loops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from autoopt.errors import DataError
from autoopt.strategy.params import StrategyParams

DAY_NS = 86_400 * 10**9

KERNEL_FIELDS = (
    "entry_threshold", "no_trade_band", "min_hold_bars", "vol_target", "kelly_cap",
    "stop_loss_atr", "take_profit_atr", "trailing_stop_atr", "max_leverage",
    "daily_loss_limit", "max_drawdown", "halt_bars",
)
"""Order of the parameter vector the kernels take (ATR and volatility windows are applied
before the loop, in `MarketInputs`)."""

EXIT_NONE, EXIT_STOP, EXIT_TRAIL, EXIT_TAKE_PROFIT = 0, 1, 2, 3


@dataclass
class MarketInputs:
    """Validated bar arrays of one symbol plus the indicators each parameter set needs, cached
    per window (tuning evaluates thousands of points on the same bars)."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    day: np.ndarray
    ts: np.ndarray
    periods_per_year: float
    _atr: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _vol: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_bars(cls, bars: pl.DataFrame, *, periods_per_year: float) -> MarketInputs:
        for col in ("ts", "open", "high", "low", "close"):
            if col not in bars.columns:
                raise DataError(f"strategy simulation: bars lack column {col!r}")
        if bars.height < 3:
            raise DataError(f"strategy simulation: need at least 3 bars, got {bars.height}")
        if not periods_per_year > 0:
            raise DataError(f"strategy simulation: periods_per_year must be > 0, got {periods_per_year}")
        arrays = {c: np.ascontiguousarray(bars[c].to_numpy(), dtype=np.float64)
                  for c in ("open", "high", "low", "close")}
        for c, a in arrays.items():
            if not np.all(np.isfinite(a)) or np.any(a <= 0):
                raise DataError(f"strategy simulation: column {c!r} has non-finite or non-positive prices")
        ts = bars["ts"].to_numpy().astype(np.int64)
        return cls(arrays["open"], arrays["high"], arrays["low"], arrays["close"],
                   (ts // DAY_NS).astype(np.float64), ts, float(periods_per_year))

    @property
    def n(self) -> int:
        return int(self.close.size)

    def atr(self, period: int) -> np.ndarray:
        """TA-Lib ATR at each bar (known at its close); NaN during the warm-up."""
        if period not in self._atr:
            from autoopt.features import atr

            self._atr[period] = np.ascontiguousarray(
                atr(self.high, self.low, self.close, period), dtype=np.float64)
        return self._atr[period]

    def vol(self, window: int) -> np.ndarray:
        """Annualised std (ddof=1) of the last ``window`` close-to-close returns up to t."""
        if window not in self._vol:
            ret = np.zeros(self.n)
            ret[1:] = self.close[1:] / self.close[:-1] - 1.0
            s = pl.Series(ret).rolling_std(window_size=window).to_numpy()
            self._vol[window] = np.ascontiguousarray(
                np.asarray(s, dtype=np.float64) * math.sqrt(self.periods_per_year))
        return self._vol[window]

    def slice(self, start: int, stop: int) -> MarketInputs:
        """Rows [start, stop) with the indicators computed on the full history (so a window's
        first bars keep their warm-up from the bars before it: no look-ahead, less waste)."""
        out = MarketInputs(self.open[start:stop], self.high[start:stop], self.low[start:stop],
                           self.close[start:stop], self.day[start:stop], self.ts[start:stop],
                           self.periods_per_year)
        out._atr = {k: v[start:stop] for k, v in self._atr.items()}
        out._vol = {k: v[start:stop] for k, v in self._vol.items()}
        return out


@dataclass(frozen=True)
class SimResult:
    """Per-bar outputs, aligned with the bars: ``returns[t]`` and ``turnover[t]`` are earned /
    traded over bar t (``returns[0] = 0``); ``exposure[t]`` is the position decided at the close
    of t (held over t+1 unless an exit fires in it); ``exits[t]`` says which exit fired in bar
    t (0 none, 1 stop loss, 2 trailing stop, 3 take profit)."""

    returns: np.ndarray
    exposure: np.ndarray
    turnover: np.ndarray
    exits: np.ndarray


def kernel_vector(params: StrategyParams) -> np.ndarray:
    return np.array([float(getattr(params, f)) for f in KERNEL_FIELDS], dtype=np.float64)


def _prob(prob: np.ndarray, n: int) -> np.ndarray:
    p = np.ascontiguousarray(prob, dtype=np.float64)
    if p.shape != (n,):
        raise DataError(f"strategy simulation: probabilities have shape {p.shape}, bars have {n} rows")
    finite = p[np.isfinite(p)]
    if np.any(np.isinf(p)) or np.any((finite < 0) | (finite > 1)):
        raise DataError("strategy simulation: probabilities must be in [0, 1] (NaN = no signal)")
    return p


def simulate(
    inputs: MarketInputs,
    prob: np.ndarray,
    params: StrategyParams,
    *,
    cost_bps: float = 0.0,
    engine: str = "native",
) -> SimResult:
    """Run ``params`` over the bars of ``inputs`` with the model's probabilities ``prob``
    (NaN: no signal, flat). ``engine``: ``native`` (Rust) or ``python`` (the reference)."""
    if not (cost_bps >= 0 and math.isfinite(cost_bps)):
        raise DataError(f"strategy simulation: cost_bps must be >= 0, got {cost_bps}")
    p = _prob(prob, inputs.n)
    need_atr = params.stop_loss_atr > 0 or params.take_profit_atr > 0 or params.trailing_stop_atr > 0
    atr = inputs.atr(params.atr_period) if need_atr else np.zeros(inputs.n)
    vol = inputs.vol(params.vol_window) if params.vol_target > 0 else np.zeros(inputs.n)
    args = (inputs.open, inputs.high, inputs.low, inputs.close, p, atr, vol, inputs.day,
            kernel_vector(params), float(cost_bps))
    if engine == "native":
        from autoopt._native import simulate_strategy

        r, e, t, x = simulate_strategy(*args)
        return SimResult(r, e, t, x)
    if engine == "python":
        r, e, t, x = reference_loop(*args)
        return SimResult(r, e, t, x)
    raise DataError(f"strategy simulation: unknown engine {engine!r} (native, python)")


def reference_loop(
    o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, p: np.ndarray,
    atr: np.ndarray, vol: np.ndarray, day: np.ndarray, k: np.ndarray, cost_bps: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The definition, one bar at a time (see `autoopt.strategy.params`). The Rust kernel is a
    line-by-line transcription: change both or neither."""
    (thr, band, min_hold, vol_target, kelly_cap, sl, tp, tr, max_lev, dll, mdd,
     halt_bars) = (float(x) for x in k)
    Op, H, L, C, P = o.tolist(), h.tolist(), lo.tolist(), c.tolist(), p.tolist()
    A, V, D = atr.tolist(), vol.tolist(), day.tolist()
    n = len(C)
    cost = cost_bps / 1e4
    ret = [0.0] * n
    expo = [0.0] * n
    turn = [0.0] * n
    kinds = [0] * n
    held = 0.0
    direction = 0
    entry_px = entry_atr = best = math.nan
    bars_held = 0
    stopped_dir = 0
    equity = peak = 1.0
    halted_until = -1
    cur_day = D[0]
    day_start = 1.0
    day_blocked = False
    for t in range(n - 1):
        pt = P[t]
        # 1. the model's direction, with the no-trade band around an open position
        if pt != pt:
            sig = 0
        elif direction > 0 and pt > thr - band:
            sig = 1
        elif direction < 0 and pt < 1.0 - thr + band:
            sig = -1
        elif pt > thr:
            sig = 1
        elif pt < 1.0 - thr:
            sig = -1
        else:
            sig = 0
        # 2. minimum holding period
        if direction != 0 and sig != direction and bars_held < min_hold and pt == pt:
            sig = direction
        # 3. no re-entry in the direction just stopped out until the model changes its mind
        if stopped_dir != 0:
            if sig == stopped_dir:
                sig = 0
            else:
                stopped_dir = 0
        # 4. halts
        if t < halted_until:
            sig = 0
        if day_blocked and D[t + 1] == cur_day:
            sig = 0
        # 5. size
        want = 0.0
        if sig != 0:
            size = 1.0
            if vol_target > 0.0:
                v = V[t]
                size = vol_target / v if v > 0.0 else 0.0
            if kelly_cap > 0.0:
                size = size * (min(abs(2.0 * pt - 1.0), kelly_cap) / kelly_cap)
            if size > max_lev:
                size = max_lev
            want = sig * size
        # 6. entries
        if want != 0.0:
            if direction != sig:
                direction = sig
                entry_px = C[t]
                entry_atr = A[t]
                best = C[t]
                bars_held = 0
            elif not entry_atr == entry_atr:
                entry_atr = A[t]  # entered during the ATR warm-up: the first ATR known after
        else:
            direction = 0
        turnover = abs(want - held)
        r = want * (C[t + 1] / C[t] - 1.0)
        kind = 0
        # 7. exits inside bar t+1: gap at the open first, then the worse of the touched levels
        if want != 0.0 and entry_atr > 0.0:
            d = float(direction)
            adverse = math.nan
            adverse_kind = 0
            if sl > 0.0:
                adverse = entry_px - d * sl * entry_atr
                adverse_kind = 1
            if tr > 0.0:
                trail = best - d * tr * entry_atr
                if adverse_kind == 0 or (d > 0.0 and trail > adverse) or (d < 0.0 and trail < adverse):
                    adverse = trail
                    adverse_kind = 2
            target = entry_px + d * tp * entry_atr
            exit_px = 0.0
            ob, hb, lb = Op[t + 1], H[t + 1], L[t + 1]
            if d > 0.0:
                if tp > 0.0 and ob >= target:
                    exit_px, kind = ob, 3
                elif adverse_kind != 0 and lb <= adverse:
                    exit_px, kind = min(ob, adverse), adverse_kind
                elif tp > 0.0 and hb >= target:
                    exit_px, kind = target, 3
            else:
                if tp > 0.0 and ob <= target:
                    exit_px, kind = ob, 3
                elif adverse_kind != 0 and hb >= adverse:
                    exit_px, kind = max(ob, adverse), adverse_kind
                elif tp > 0.0 and lb <= target:
                    exit_px, kind = target, 3
            if kind != 0:
                r = want * (exit_px / C[t] - 1.0)
                turnover = turnover + abs(want)
                stopped_dir = direction
                direction = 0
        net = r - cost * turnover
        ret[t + 1] = net
        expo[t] = want
        turn[t + 1] = turnover
        kinds[t + 1] = kind
        held = 0.0 if kind != 0 else want
        if direction != 0:
            bars_held += 1
            if direction > 0:
                if H[t + 1] > best:
                    best = H[t + 1]
            elif L[t + 1] < best:
                best = L[t + 1]
        # 8. equity, the daily loss limit and the drawdown halt
        if D[t + 1] != cur_day:
            cur_day = D[t + 1]
            day_start = equity
            day_blocked = False
        equity = equity * (1.0 + net)
        if equity > peak:
            peak = equity
        if dll > 0.0 and equity / day_start - 1.0 <= -dll:
            day_blocked = True
        if mdd > 0.0 and t + 1 >= halted_until and 1.0 - equity / peak >= mdd:
            halted_until = t + 1 + max(int(halt_bars), 1)
            peak = equity
    return (np.array(ret), np.array(expo), np.array(turn), np.array(kinds, dtype=np.int8))


def simulate_bars(
    bars: pl.DataFrame, prob: np.ndarray, params: StrategyParams, *,
    periods_per_year: float, cost_bps: float = 0.0, engine: str = "native",
) -> SimResult:
    """`simulate` straight from a bars frame (ts, open, high, low, close)."""
    inputs = MarketInputs.from_bars(bars, periods_per_year=periods_per_year)
    return simulate(inputs, prob, params, cost_bps=cost_bps, engine=engine)


__all__ = [
    "EXIT_NONE", "EXIT_STOP", "EXIT_TAKE_PROFIT", "EXIT_TRAIL", "KERNEL_FIELDS", "MarketInputs",
    "SimResult", "kernel_vector", "reference_loop", "simulate", "simulate_bars",
]
