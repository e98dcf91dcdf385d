"""Paper fills, pure: routed signals in, closed trades out, from the bars alone.

Fill model (one rule, documented because the A/B statistics are computed on it):
* A route whose side is "long" or "short" enters at the ``open`` of the first bar strictly
  after the signal's time (``ts_event``: the bar it was decided on), plus slippage against it
  (a long pays ``open x (1 + slippage)``, a short receives ``open x (1 - slippage)``).
* It exits at the ``close`` of its ``hold_bars``-th bar, slippage against it again.
* Fees are charged on both sides: the net return is
  ``side x (exit / entry - 1) - 2 x fees_bps / 1e4`` (side +1 long, -1 short), with qty the
  route's ``size_multiplier`` and pnl = net return x entry x qty.
* A "flat" route (or one below its variant's confidence threshold) is no trade.

Bars are kept per symbol (the last ``max_bars``), so a route is filled correctly whichever of
the two arrives first (signals and bars come from different streams).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class PaperTrade:
    """A closed paper trade of one route."""

    route_id: str
    symbol: str
    signal_id: str
    experiment: str
    variant: str
    release_id: str
    side: str
    qty: float
    entry_ts: int
    exit_ts: int
    entry_price: float
    exit_price: float
    fees: float
    pnl: float
    net_return: float


@dataclass
class _Open:
    route_id: str
    symbol: str
    signal_id: str
    experiment: str
    variant: str
    release_id: str
    side: str
    qty: float
    signal_ts: int


@dataclass
class _Bars:
    ts: list[int] = field(default_factory=list)
    open: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    close: list[float] = field(default_factory=list)
    volume: list[float] = field(default_factory=list)


class PaperBook:
    """Pending routes and recent bars per symbol; `advance` closes what the bars allow."""

    def __init__(self, *, fees_bps: float = 2.0, slippage_bps: float = 1.0, hold_bars: int = 1,
                 max_bars: int = 5000) -> None:
        self.fee = fees_bps / 1e4
        self.slip = slippage_bps / 1e4
        self.hold = max(1, int(hold_bars))
        self.max_bars = max_bars
        self.bars: dict[str, _Bars] = {}
        self.pending: dict[str, list[_Open]] = {}
        self._seen: set[str] = set()

    def add_bars(self, symbol: str, ts: np.ndarray, open_: np.ndarray, high: np.ndarray,
                 low: np.ndarray, close: np.ndarray, volume: np.ndarray) -> None:
        """Append bars (newer than the last kept one; older or repeated ones are ignored)."""
        b = self.bars.setdefault(symbol, _Bars())
        last = b.ts[-1] if b.ts else None
        for i in range(len(ts)):
            t = int(ts[i])
            if last is not None and t <= last:
                continue
            b.ts.append(t)
            b.open.append(float(open_[i]))
            b.high.append(float(high[i]))
            b.low.append(float(low[i]))
            b.close.append(float(close[i]))
            b.volume.append(float(volume[i]))
            last = t
        extra = len(b.ts) - self.max_bars
        if extra > 0:
            for col in (b.ts, b.open, b.high, b.low, b.close, b.volume):
                del col[:extra]

    def window(self, symbol: str, until_ts: int) -> dict[str, np.ndarray] | None:
        """The kept bars of ``symbol`` up to ``until_ts`` (inclusive), None until a bar at or
        after it has arrived (the window may not be complete yet)."""
        b = self.bars.get(symbol)
        if b is None or not b.ts or b.ts[-1] < until_ts:
            return None
        n = int(np.searchsorted(np.asarray(b.ts), until_ts, side="right"))
        return {name: np.asarray(getattr(b, name)[:n])
                for name in ("ts", "open", "high", "low", "close", "volume")}

    def add_route(self, route_id: str, *, symbol: str, signal_id: str, experiment: str,
                  variant: str, release_id: str, side: str, qty: float, signal_ts: int) -> bool:
        """Queue a route for filling; False for a repeat or a no-trade ("flat") route."""
        if route_id in self._seen or side not in ("long", "short") or qty <= 0:
            return False
        self._seen.add(route_id)
        self.pending.setdefault(symbol, []).append(_Open(
            route_id, symbol, signal_id, experiment, variant, release_id, side, float(qty),
            int(signal_ts)))
        return True

    def advance(self, symbol: str) -> list[PaperTrade]:
        """Close every pending route of ``symbol`` whose exit bar has arrived."""
        b = self.bars.get(symbol)
        waiting = self.pending.get(symbol)
        if b is None or not waiting or not b.ts:
            return []
        ts = np.asarray(b.ts)
        out: list[PaperTrade] = []
        keep: list[_Open] = []
        for o in waiting:
            entry = int(np.searchsorted(ts, o.signal_ts, side="right"))
            exit_ = entry + self.hold - 1
            if entry == 0 and b.ts[0] > o.signal_ts and len(b.ts) >= self.max_bars:
                continue  # its entry bar fell out of the kept window: cannot be filled
            if exit_ >= len(b.ts):
                keep.append(o)
                continue
            sign = 1.0 if o.side == "long" else -1.0
            entry_px = b.open[entry] * (1.0 + sign * self.slip)
            exit_px = b.close[exit_] * (1.0 - sign * self.slip)
            net = sign * (exit_px / entry_px - 1.0) - 2.0 * self.fee
            fees = 2.0 * self.fee * entry_px * o.qty
            out.append(PaperTrade(
                o.route_id, o.symbol, o.signal_id, o.experiment, o.variant, o.release_id,
                o.side, o.qty, b.ts[entry], b.ts[exit_], entry_px, exit_px, fees,
                net * entry_px * o.qty, net))
        self.pending[symbol] = keep
        return out


__all__ = ["PaperBook", "PaperTrade"]
