"""The paper trader's I/O: routed signals and bars from the log in, `TradeOutcome` per variant out.

Why: a shadow canary's challenger never trades for real, so without paper fills it has no
outcomes and the experiment can never conclude. With ``[paper] enabled`` the service runs one
(``autoopt paper`` runs it alone).

What it fills: every paper route (``SignalRouted.paper``: a shadow experiment's challengers), and
with ``paper.live_routes`` the live routes of experiments too (the champion's, so both arms are
judged on one fill model without any real order; an engine that also reports real outcomes for
those signals then counts twice, so leave it off when the engine reports them).

Whose decision: a paper route's release is not the one the engine decided with, so when that
release records its feature set (`autoopt.client.Champion`), the trader asks it: long when its
P(up) on the bars up to the signal's bar is above 0.5, else short. A release without a recorded
feature set keeps the routed side.

Fills follow `autoopt.paper.book`. Each outcome's id derives from its route, so a redelivered
route or bar never stores an outcome twice. Routes and bars are read through durable consumers
(``paper.durable`` + ``-routes`` / ``-bars``) from the time the trader first started.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from autoopt.config import PaperConfig
from autoopt.events import BarBatch, Event, SignalRouted, SignalsRouted, TradeOutcome
from autoopt.ids import derived_event_id
from autoopt.paper.book import PaperBook, PaperTrade
from autoopt.subjects import subject_filter_for_type

log = logging.getLogger("autoopt.paper")
MAX_WAITING = 100_000
"""Routes of one symbol that may wait for their bars; past it the oldest is dropped (counted)."""


class PaperTrader:
    """See the module docstring; `run` consumes until ``stop``."""

    def __init__(self, event_log: Any, config: PaperConfig, *, registry: Any = None,
                 plugins: Any = None) -> None:
        self.log = event_log
        self.config = config
        self.registry = registry
        self.plugins = plugins
        self.book = PaperBook(fees_bps=config.fees_bps, slippage_bps=config.slippage_bps,
                              hold_bars=config.hold_bars)
        self._undecided: dict[str, list[SignalRouted]] = {}
        self._models: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        self.outcomes = 0
        self.routes = 0
        self.dropped = 0
        """Routes dropped because their symbol's bars never came (`MAX_WAITING`)."""

    async def run(self, stop: asyncio.Event) -> None:
        durable = self.config.durable
        routes = [subject_filter_for_type(SignalsRouted), subject_filter_for_type(SignalRouted)]
        await asyncio.gather(
            self.log.consume(f"{durable}-routes", routes, self.handle, stop=stop, batch=256,
                             poll_s=0.2, deliver="new"),
            self.log.consume(f"{durable}-bars", subject_filter_for_type(BarBatch), self.handle,
                             stop=stop, batch=64, poll_s=0.2, deliver="new"),
        )

    async def handle(self, event: Event, delivery: Any = None) -> None:
        async with self._lock:  # one state, two consumers
            if isinstance(event, SignalsRouted):
                symbols = {r.symbol for r in event.routes if self._take(r)}
            elif isinstance(event, SignalRouted):
                symbols = {event.symbol} if self._take(event) else set()
            elif isinstance(event, BarBatch):
                a = event.arrays()
                self.book.add_bars(event.symbol, a["ts"], a["open"], a["high"], a["low"],
                                   a["close"], a["volume"])
                symbols = {event.symbol}
            else:
                return
            trades: list[PaperTrade] = []
            for symbol in sorted(symbols):
                await self._decide(symbol)
                trades += self.book.advance(symbol)
            if trades:
                await self.log.append_many([self._outcome(t) for t in trades])
                self.outcomes += len(trades)

    def _take(self, route: SignalRouted) -> bool:
        if not (route.paper or self.config.live_routes):
            return False
        self.routes += 1
        waiting = self._undecided.setdefault(route.symbol, [])
        if len(waiting) >= MAX_WAITING:  # no bars arrive for this symbol: keep memory bounded
            self.dropped += 1
            log.warning("paper: %s has %d routes waiting for bars; dropping the oldest",
                        route.symbol, len(waiting))
            del waiting[0]
        waiting.append(route)
        return True

    async def _decide(self, symbol: str) -> None:
        """Queue each waiting route with its side, once the bars up to its signal are in."""
        waiting = self._undecided.get(symbol) or []
        keep: list[SignalRouted] = []
        for route in waiting:
            side: str | None = route.side
            if route.paper:
                model = await self._model(symbol, route.release_id)
                if model is not None:
                    window = self.book.window(symbol, route.ts_event)
                    if window is None:
                        keep.append(route)
                        continue
                    side = self._side(model, window, route)
            self.book.add_route(route.event_id, symbol=symbol, signal_id=route.signal_id,
                                experiment=route.experiment, variant=route.variant,
                                release_id=route.release_id, side=side or "flat",
                                qty=route.size_multiplier, signal_ts=route.ts_event)
        self._undecided[symbol] = keep

    @staticmethod
    def _side(model: Any, window: dict[str, Any], route: SignalRouted) -> str:
        n = len(window["ts"])
        if n <= model.features.warmup:
            return "flat"
        try:
            p = model.predict_latest(window)
        except Exception as exc:  # incomplete features: no trade, said why
            log.warning("paper: %s cannot decide route %s: %s", route.release_id,
                        route.event_id, exc)
            return "flat"
        return "long" if p > 0.5 else "short"

    async def _model(self, symbol: str, release_id: str) -> Any:
        """The release, loaded once, when it records its feature set; else None."""
        if release_id in self._models:
            return self._models[release_id]
        model = None
        if self.registry is not None and self.plugins is not None:
            from autoopt.client.watcher import load_release
            from autoopt.promotion import recorded_release

            try:
                recorded = await recorded_release(self.log, symbol, release_id)
                loaded = await asyncio.to_thread(load_release, self.registry, self.plugins,
                                                 symbol, release_id, recorded)
                model = loaded if loaded.features is not None else None
            except Exception as exc:  # not loadable here: the routed side stands
                log.warning("paper: release %s of %s not loaded (%s): routed sides are used",
                            release_id, symbol, exc)
        self._models[release_id] = model
        return model

    @staticmethod
    def _outcome(t: PaperTrade) -> TradeOutcome:
        return TradeOutcome.new(
            event_id=derived_event_id(t.route_id, "paper.outcome"), ts_event=t.exit_ts,
            symbol=t.symbol, trade_id=f"paper-{t.route_id}", side=t.side, qty=t.qty,
            entry_price=t.entry_price, exit_price=t.exit_price, fees=t.fees, pnl=t.pnl,
            return_=t.net_return, signal_id=t.signal_id, release_id=t.release_id,
            experiment=t.experiment, variant=t.variant, entry_ts=t.entry_ts, exit_ts=t.exit_ts,
        )


__all__ = ["PaperTrader"]
