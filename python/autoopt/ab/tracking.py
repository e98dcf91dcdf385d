"""Per-variant outcome tracking: trades, fills and errors joined to experiment variants.

Why: a decision is only as good as the join from a trade back to the variant that produced it,
and the running numbers must be the same whether kept live or rebuilt from the log.

Join: a `TradeOutcome` (or `Fill`) carrying ``experiment`` and ``variant`` joins directly (paper
trades of shadow challengers carry them); otherwise its ``signal_id`` joins the live
`SignalRouted` of that signal (stored alone or inside the router's `SignalsRouted` batches). An
`ErrorRaised` joins through ``details["signal_id"]`` or ``details["experiment"]`` +
``details["variant"]``. An outcome whose route has not been seen
yet waits until the route arrives. Duplicates (same event id) count once.

Statistics per variant: count, mean and variance of per-trade returns (Welford), PnL, drawdown
of cumulative return and of PnL, Sharpe (per trade, mean/sd), loss streaks, fills and fees,
signals routed and errors. `OutcomeTracker.rebuild` replays SIGNALS (routes), then TRADES, then
SYSTEM; fed live in that stream order the tracker reaches the same state.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from autoopt.events import ErrorRaised, Event, Fill, SignalRouted, SignalsRouted, TradeOutcome
from autoopt.log import EventLog
from autoopt.subjects import subject_filter_for_type

Key = tuple[str, str]  # (experiment, variant)


class VariantStats:
    """Running statistics of one variant's closed trades (and its routed signals and errors)."""

    __slots__ = (
        "n", "mean", "m2", "pnl", "cum_return", "peak_return", "max_drawdown", "peak_pnl",
        "max_drawdown_pnl", "wins", "losses", "loss_streak", "max_loss_streak", "fills", "fees",
        "routed", "errors", "_returns", "by_signal",
    )  # fmt: skip

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.pnl = 0.0
        self.cum_return = 0.0
        self.peak_return = 0.0
        self.max_drawdown = 0.0
        self.peak_pnl = 0.0
        self.max_drawdown_pnl = 0.0
        self.wins = 0
        self.losses = 0
        self.loss_streak = 0
        self.max_loss_streak = 0
        self.fills = 0
        self.fees = 0.0
        self.routed = 0
        self.errors = 0
        self._returns = np.empty(64)
        self.by_signal: dict[str, float] = {}  # signal id -> return, for paired (shadow) tests

    def add_trade(self, ret: float, pnl: float, signal_id: str | None = None) -> None:
        self.n += 1
        delta = ret - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (ret - self.mean)
        if self.n > self._returns.size:
            self._returns = np.concatenate((self._returns, np.empty(self._returns.size)))
        self._returns[self.n - 1] = ret
        self.pnl += pnl
        self.cum_return += ret
        self.peak_return = max(self.peak_return, self.cum_return)
        self.max_drawdown = max(self.max_drawdown, self.peak_return - self.cum_return)
        self.peak_pnl = max(self.peak_pnl, self.pnl)
        self.max_drawdown_pnl = max(self.max_drawdown_pnl, self.peak_pnl - self.pnl)
        if pnl < 0:
            self.losses += 1
            self.loss_streak += 1
            self.max_loss_streak = max(self.max_loss_streak, self.loss_streak)
        else:
            self.wins += pnl > 0
            self.loss_streak = 0
        if signal_id is not None:
            self.by_signal[signal_id] = ret

    @property
    def returns(self) -> np.ndarray:
        """Per-trade returns in the order they closed (a read-only view)."""
        view = self._returns[: self.n]
        view.flags.writeable = False
        return view

    @property
    def variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0

    @property
    def sd(self) -> float:
        return math.sqrt(self.variance)

    @property
    def sharpe(self) -> float:
        sd = self.sd
        return self.mean / sd if sd > 0 else 0.0

    @property
    def drawdown(self) -> float:
        """Current distance of cumulative return below its peak."""
        return self.peak_return - self.cum_return

    @property
    def error_rate(self) -> float:
        return self.errors / self.routed if self.routed else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "mean": self.mean,
            "sd": self.sd,
            "sharpe": self.sharpe,
            "pnl": self.pnl,
            "cum_return": self.cum_return,
            "drawdown": self.drawdown,
            "max_drawdown": self.max_drawdown,
            "max_drawdown_pnl": self.max_drawdown_pnl,
            "win_rate": self.wins / self.n if self.n else 0.0,
            "loss_streak": self.loss_streak,
            "max_loss_streak": self.max_loss_streak,
            "fills": self.fills,
            "fees": self.fees,
            "routed": self.routed,
            "errors": self.errors,
            "error_rate": self.error_rate,
        }


class OutcomeTracker:
    """Joins outcomes to variants and keeps `VariantStats` per (experiment, variant)."""

    def __init__(self, *, max_pending: int = 100_000) -> None:
        self.max_pending = max_pending
        self.stats: dict[Key, VariantStats] = {}
        self.live_route: dict[str, Key] = {}  # signal id -> the variant that traded it live
        self.pending: dict[str, list[Event]] = {}  # signal id -> outcomes waiting for the route
        self._seen: set[str] = set()
        self.unjoined = 0  # outcomes/fills with no experiment (ordinary trading)

    def variant(self, experiment: str, variant: str) -> VariantStats:
        key = (experiment, variant)
        st = self.stats.get(key)
        if st is None:
            st = self.stats[key] = VariantStats()
        return st

    def of(self, experiment: str) -> dict[str, VariantStats]:
        """Variant name -> stats of one experiment."""
        return {v: st for (e, v), st in self.stats.items() if e == experiment}

    def _key(self, ev: TradeOutcome | Fill) -> Key | None:
        exp = getattr(ev, "experiment", None)
        var = getattr(ev, "variant", None)
        if exp and var:
            return (exp, var)
        if ev.signal_id is not None:
            return self.live_route.get(ev.signal_id)
        return None

    def apply(self, ev: Event) -> bool:
        """Fold one event in; False when it is not one the tracker uses."""
        if isinstance(ev, SignalsRouted):
            for route in ev.routes:
                self.apply(route)
            return True
        if isinstance(ev, SignalRouted):
            if ev.event_id in self._seen:
                return True
            self._seen.add(ev.event_id)
            key = (ev.experiment, ev.variant)
            self.variant(*key).routed += 1
            if not ev.paper:
                self.live_route[ev.signal_id] = key
                for waiting in self.pending.pop(ev.signal_id, ()):
                    self._apply_outcome(waiting, key)  # type: ignore[arg-type]
            return True
        if isinstance(ev, TradeOutcome | Fill):
            if ev.event_id in self._seen:
                return True
            self._seen.add(ev.event_id)
            key = self._key(ev)
            if key is not None:
                self._apply_outcome(ev, key)
            elif ev.signal_id is not None:
                self._wait(ev.signal_id, ev)
            else:
                self.unjoined += 1
            return True
        if isinstance(ev, ErrorRaised):
            key = self._error_key(ev)
            if key is None:
                return False
            if ev.event_id not in self._seen:
                self._seen.add(ev.event_id)
                self.variant(*key).errors += 1
            return True
        return False

    def _wait(self, signal_id: str, ev: Event) -> None:
        if signal_id not in self.pending and len(self.pending) >= self.max_pending:
            oldest = next(iter(self.pending))
            self.unjoined += len(self.pending.pop(oldest))
        self.pending.setdefault(signal_id, []).append(ev)

    def settle(self) -> None:
        """Give up on outcomes still waiting for a route: they are ordinary (non-experiment)
        trades. `rebuild` calls this once every route has been read."""
        self.unjoined += sum(len(v) for v in self.pending.values())
        self.pending.clear()

    def _apply_outcome(self, ev: TradeOutcome | Fill, key: Key) -> None:
        st = self.variant(*key)
        if isinstance(ev, TradeOutcome):
            st.add_trade(ev.return_, ev.pnl, ev.signal_id)
        else:
            st.fills += 1
            st.fees += ev.fee

    def _error_key(self, ev: ErrorRaised) -> Key | None:
        d = ev.details
        exp, var = d.get("experiment"), d.get("variant")
        if isinstance(exp, str) and isinstance(var, str):
            return (exp, var)
        sid = d.get("signal_id")
        if isinstance(sid, str):
            return self.live_route.get(sid)
        return None

    async def replay(self, log: EventLog) -> None:
        """Fold in the log's routes, then trades, then errors."""
        routes = [subject_filter_for_type(SignalRouted), subject_filter_for_type(SignalsRouted)]
        for target in (routes, "TRADES", "SYSTEM"):
            async for chunk in log.replay_batches(target):
                for rec in chunk:
                    self.apply(rec.event)
            if target == "TRADES":
                self.settle()

    @classmethod
    async def rebuild(cls, log: EventLog) -> OutcomeTracker:
        """A fresh tracker from the log."""
        tracker = cls()
        await tracker.replay(log)
        return tracker


__all__ = ["Key", "OutcomeTracker", "VariantStats"]
