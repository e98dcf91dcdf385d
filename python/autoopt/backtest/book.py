"""The traded path of one (policy, symbol): the champions' probabilities and the strategy params
in force, through the strategy simulator.

Why the simulator: a backtest that replays the service must trade the way the engine does,
with the thresholds, sizing, stops and halts of the `StrategyParams` released at each moment,
and measure them the way the live risk tuning and the strategy gate do. So every bar goes
through `autoopt.strategy.simulate.simulate` (the Rust kernel ``simulate_strategy``); with
neutral params that is exactly the pipeline's own formula, position × next-bar return − costs
on the change of position, bit for bit (tests/test_backtest_risk.py holds them equal).

Indexing (the engine's steps): ``pos[i]`` is the position decided at bar ``i``'s close and
``ret[i]`` what it earns to bar ``i+1``'s close, after costs.

Segments. A new champion changes the probabilities from its first step on; the kernel is run
again from the start of the params segment, so its state (entry, stops, holding period, daily
loss limit, drawdown halt) carries across model swaps, and, the kernel being causal, no earlier
step changes. A params release starts a new segment at its first step: the kernel restarts
there with the new params; an open position is carried over (costs only on the change of
position) and re-anchored: its stop loss, take profit and trailing stop are measured from that
bar's close and ATR, and the holding period, the daily loss limit and the drawdown halt start
afresh.
"""

from __future__ import annotations

import numpy as np

from autoopt.strategy.params import StrategyParams
from autoopt.strategy.simulate import MarketInputs, simulate


class Book:
    """Positions and net returns of one (policy, symbol) from step ``start`` on."""

    def __init__(self, market: MarketInputs, start: int, params: StrategyParams,
                 cost_bps: float) -> None:
        n = market.n
        self.market = market
        self.start = start
        self.params = params
        self.cost_bps = float(cost_bps)
        self.prob = np.full(n, np.nan)
        self.pos = np.zeros(n)
        self.ret = np.zeros(n)
        self._segment = start
        self._carried = 0.0
        self._simulate()  # flat until a champion trades (signed zeros as the formula gives)

    def set_model(self, step: int, prob: np.ndarray | None) -> None:
        """The champion from ``step`` on predicts ``prob`` (aligned with bars ``step..``; None:
        no champion, flat)."""
        self.prob[step:] = np.nan if prob is None else prob
        self._simulate()

    def set_params(self, step: int, params: StrategyParams) -> None:
        """``params`` trade from ``step`` on (a new segment; module doc)."""
        self._carried = float(self.pos[step - 1]) if step > self.start else 0.0
        self._segment = step
        self.params = params
        self._simulate()

    def _simulate(self) -> None:
        s, m, p = self._segment, self.market, self.params
        if s >= m.n - 1:
            return
        m.atr(p.atr_period)  # on the whole history: the segment keeps its warm-up
        m.vol(p.vol_window)
        sim = simulate(m.slice(s, m.n), self.prob[s:], p, cost_bps=self.cost_bps)
        self.pos[s:] = sim.exposure
        self.ret[s:-1] = sim.returns[1:]
        # the first bar: costs on the change from the position carried in, not from flat
        want, prev, cost = float(sim.exposure[0]), self._carried, self.cost_bps / 1e4
        turnover = float(sim.turnover[1]) - abs(want) + abs(want - prev)
        if sim.exits[1] == 0:  # the kernel's own expression, so neutral stays bit-exact
            c = m.close
            self.ret[s] = want * (c[s + 1] / c[s] - 1.0) - cost * turnover
        else:
            self.ret[s] = float(sim.returns[1]) - cost * (turnover - float(sim.turnover[1]))


__all__ = ["Book"]
