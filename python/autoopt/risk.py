"""Risk overlays on a model's positions: stops, volatility-targeted sizing, a drawdown limit.

The full strategy layer (thresholds on probabilities, holding periods, Kelly sizing, trailing
stops, daily loss limits) is `autoopt.strategy`; this module keeps the positions-based overlay
the ``stops-sizing`` tuner plugin searches, on the same simulation. Portfolio weights moved to
`autoopt.portfolio` (skfolio).

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


def simulate(
    bars: pl.DataFrame,
    positions: np.ndarray,
    params: RiskParams,
    *,
    periods_per_year: float,
    cost_bps: float = 0.0,
) -> np.ndarray:
    """Per-bar net returns of ``positions`` under the overlay ``params`` (see module doc).

    One code path with the strategy layer: the positions become probabilities
    (``p = 0.5 + 0.5 × position``, so neutral thresholds trade them as given and ``kelly_cap = 1``
    keeps fractional sizes) and `autoopt.strategy.simulate` (the Rust kernel) runs them, with
    its intrabar rule (the worse level first; an open beyond a level fills there)."""
    from autoopt.strategy.params import StrategyParams
    from autoopt.strategy.simulate import simulate_bars

    for col in ("open", "high", "low", "close"):
        if col not in bars.columns:
            raise DataError(f"risk.simulate: bars lack column {col!r}")
    pos = np.asarray(positions, dtype=np.float64)
    if pos.shape != (bars.height,):
        raise DataError(f"risk.simulate: positions has shape {pos.shape}, bars have {bars.height} rows")
    if bars.height < 3:
        raise DataError("risk.simulate: need at least 3 bars")
    if not np.all(np.isfinite(pos)) or np.any(np.abs(pos) > 1):
        raise DataError("risk.simulate: positions must be finite and within [-1, 1]")
    fractional = bool(np.any((pos != 0) & (np.abs(pos) != 1)))
    strategy = StrategyParams(
        stop_loss_atr=params.stop_loss_atr, take_profit_atr=params.take_profit_atr,
        vol_target=params.vol_target, max_leverage=params.max_leverage,
        max_drawdown=params.max_drawdown, halt_bars=int(params.halt_bars),
        vol_window=int(params.vol_window), kelly_cap=1.0 if fractional else 0.0)
    frame = bars if "ts" in bars.columns else bars.with_row_index("ts")
    return simulate_bars(frame, 0.5 + 0.5 * pos, strategy, periods_per_year=periods_per_year,
                         cost_bps=cost_bps).returns


