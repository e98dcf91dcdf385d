"""`StrategyParams`: how a model's probability becomes a traded, risk-managed position.

Why a versioned artifact of its own: a model with a real edge still loses money with a bad
threshold, sizing or stop. These numbers are tuned, gated, released, followed by the engine and
rolled back exactly like a model (`autoopt.strategy.release`), so they live in one frozen value
with a canonical JSON form (``strategy.json`` in the registry, a flat ``dict[str, float]`` in
``RiskParamsUpdated``).

Semantics (one definition for the Python reference, the Rust kernel and the engine; see
docs/risk.md for the worked examples):

- Timing: the decision at the close of bar t uses the model's probability ``p[t]`` and data up
  to t; the position is held over bar t+1 and earns ``c[t+1]/c[t] - 1``. Nothing after t changes
  the decision at t.
- Entry: long when ``p > entry_threshold``, short when ``p < 1 - entry_threshold``, else flat.
- No-trade band (hysteresis): an open long is kept while ``p > entry_threshold - no_trade_band``
  (a short while ``p < 1 - entry_threshold + no_trade_band``), so a probability wobbling around
  the threshold does not trade back and forth.
- Minimum holding period: a position is held at least ``min_hold_bars`` bars (unless a stop,
  take-profit, daily loss limit or drawdown halt closes it).
- Sizing: 1 by default; ``vol_target > 0`` scales to that annualised volatility using the
  trailing ``vol_window`` returns up to t (flat while that is undefined); ``kelly_cap > 0``
  multiplies by ``min(|2p - 1|, kelly_cap) / kelly_cap`` (the even-odds Kelly fraction, capped,
  full size at the cap); the result is capped at ``max_leverage``.
- Exits inside bar t+1, in ATR multiples of the ATR known at entry: stop loss at
  ``entry ∓ stop_loss_atr × ATR``, trailing stop at ``best ∓ trailing_stop_atr × ATR`` (best =
  highest high / lowest low since entry, up to bar t), take profit at ``entry ± take_profit_atr
  × ATR``. A gap through a level fills at the open. **Intrabar rule: when one bar touches both an
  adverse level (stop or trailing stop) and the take profit, the worse one is taken first** —
  bars have no order of their high and low, so the simulation never assumes the lucky one;
  only an open already beyond the take profit fills it (the open is the bar's first price).
  After such an exit the position stays flat until the model's direction changes.
- Daily loss limit: once the day's compounded return reaches ``-daily_loss_limit`` the strategy
  is flat for the rest of that UTC day.
- Drawdown halt: once equity is ``max_drawdown`` below its peak the strategy is flat for
  ``halt_bars`` bars, then resumes with the peak reset to the equity then.
- Costs: ``cost_bps`` per unit of turnover, every entry, exit, resize and stop included.

``0`` disables a rule; `StrategyParams()` (`NEUTRAL`) trades the sign of ``p - 0.5`` at size 1:
the pipeline's own strategy (`autoopt.validation.metrics.positions_from_proba`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import msgspec

from autoopt.errors import DataError

ARTIFACT = "strategy.json"
MODEL_TYPE = "strategy_params"
INT_FIELDS = frozenset({"min_hold_bars", "halt_bars", "vol_window", "atr_period"})


@dataclass(frozen=True, kw_only=True)
class StrategyParams:
    """One point of the strategy search space (see the module doc for what each number does)."""

    entry_threshold: float = 0.5
    no_trade_band: float = 0.0
    min_hold_bars: int = 0
    vol_target: float = 0.0
    kelly_cap: float = 0.0
    stop_loss_atr: float = 0.0
    take_profit_atr: float = 0.0
    trailing_stop_atr: float = 0.0
    max_leverage: float = 1.0
    daily_loss_limit: float = 0.0
    max_drawdown: float = 0.0
    halt_bars: int = 0
    vol_window: int = 20
    atr_period: int = 14

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise DataError(f"StrategyParams: {problem}")

    def as_dict(self) -> dict[str, float]:
        """Every field as a float (the ``RiskParamsUpdated.params`` payload)."""
        return {k: float(v) for k, v in asdict(self).items()}

    def to_json(self) -> bytes:
        """Canonical bytes (sorted keys): the registry artifact, so equal params hash equal."""
        return msgspec.json.encode(self.as_dict(), order="sorted")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StrategyParams:
        """Inverse of `as_dict`; unknown names and non-numbers are refused in one line."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataError(f"StrategyParams: unknown parameters {unknown}")
        out: dict[str, Any] = {}
        for k, v in values.items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise DataError(f"StrategyParams: {k} must be a number, got {v!r}")
            if k in INT_FIELDS:
                if not math.isfinite(v) or v != int(v):
                    raise DataError(f"StrategyParams: {k} must be a whole number, got {v!r}")
                out[k] = int(v)
            else:
                out[k] = float(v)
        return cls(**out)

    @classmethod
    def from_json(cls, data: bytes) -> StrategyParams:
        try:
            doc = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise DataError(f"StrategyParams: {ARTIFACT} is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise DataError(f"StrategyParams: {ARTIFACT} is not a JSON object")
        return cls.from_dict(doc)

    def with_(self, **changes: Any) -> StrategyParams:
        return replace(self, **changes)


_BOUNDS: dict[str, tuple[float, float]] = {
    "entry_threshold": (0.5, 1.0),
    "no_trade_band": (0.0, 0.5),
    "min_hold_bars": (0, 10_000),
    "vol_target": (0.0, 100.0),
    "kelly_cap": (0.0, 1.0),
    "stop_loss_atr": (0.0, 1e3),
    "take_profit_atr": (0.0, 1e3),
    "trailing_stop_atr": (0.0, 1e3),
    "max_leverage": (1e-6, 1e3),
    "daily_loss_limit": (0.0, 1.0),
    "max_drawdown": (0.0, 1.0),
    "halt_bars": (0, 1_000_000),
    "vol_window": (2, 100_000),
    "atr_period": (1, 100_000),
}


def _problem(p: StrategyParams) -> str | None:
    for name, (lo, hi) in _BOUNDS.items():
        v = getattr(p, name)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return f"{name} must be a finite number, got {v!r}"
        if name in INT_FIELDS and not isinstance(v, int):
            return f"{name} must be an int, got {v!r}"
        if not lo <= v <= hi:
            return f"{name}={v!r} is outside [{lo:g}, {hi:g}]"
    if p.entry_threshold >= 1.0:
        return f"entry_threshold={p.entry_threshold!r} must be < 1"
    return None


NEUTRAL = StrategyParams()
"""Sign of p - 0.5 at size 1, no stops, no limits: what every tuned point must beat."""

__all__ = ["ARTIFACT", "INT_FIELDS", "MODEL_TYPE", "NEUTRAL", "StrategyParams"]
