"""Outcome tracking: joins to variants, running statistics, incremental == rebuilt from the log."""

from __future__ import annotations

import numpy as np
import pytest

from autoopt.ab.tracking import OutcomeTracker, VariantStats
from autoopt.events import (
    ErrorRaised,
    Event,
    Fill,
    SignalEmitted,
    SignalRouted,
    SignalsRouted,
    TradeOutcome,
)
from autoopt.log import EventLog


def _route(sig: str, variant: str, *, paper: bool = False, exp: str = "e1") -> SignalRouted:
    cause = SignalEmitted.new(symbol="BTCUSDT", signal_id=sig, side="long", confidence=0.8)
    return SignalRouted.new(
        cause=cause,
        step=f"route/{exp}/{variant}",
        symbol="BTCUSDT",
        signal_id=sig,
        experiment=exp,
        variant=variant,
        release_id="r",
        paper=paper,
    )


def _trade(sig: str | None, ret: float, **kw: object) -> TradeOutcome:
    return TradeOutcome.new(
        symbol="BTCUSDT",
        trade_id=f"t-{sig}-{kw.get('variant', '')}",
        side="long",
        qty=1.0,
        entry_price=100.0,
        exit_price=100.0 * (1 + ret),
        fees=0.01,
        pnl=100.0 * ret,
        return_=ret,
        signal_id=sig,
        **kw,
    )


def test_running_stats_match_numpy() -> None:
    rng = np.random.default_rng(3)
    r = rng.normal(0.001, 0.01, 500)
    st = VariantStats()
    for x in r:
        st.add_trade(float(x), float(x) * 100)
    assert st.mean == pytest.approx(r.mean(), rel=1e-12)
    assert st.variance == pytest.approx(r.var(ddof=1), rel=1e-10)
    assert st.sharpe == pytest.approx(r.mean() / r.std(ddof=1), rel=1e-10)
    cum = np.cumsum(r)
    assert st.max_drawdown == pytest.approx(np.max(np.maximum.accumulate(np.r_[0, cum])[1:] - cum))
    assert st.pnl == pytest.approx(100 * r.sum())
    assert np.array_equal(st.returns, r)
    signs = r < 0
    longest = max(len(run) for run in "".join("L" if s else "." for s in signs).split(".") if run)
    assert st.max_loss_streak == longest


def _scenario() -> list[Event]:
    rng = np.random.default_rng(5)
    out: list[Event] = []
    for i in range(120):
        sig = f"s{i}"
        variant = "control" if i % 2 else "chal"
        route = _route(sig, variant)
        trade = _trade(sig, float(rng.normal(0.001 if variant == "chal" else 0.0, 0.01)))
        if i % 17 == 0:
            out += [trade, route]  # the trade arrives before its route: it must wait, then join
        else:
            out += [route, trade]
        out.append(Fill.new(symbol="BTCUSDT", trade_id=f"t-{sig}", side="buy", qty=1.0,
                            price=100.0, fee=0.05, signal_id=sig))  # fmt: skip
        if i % 10 == 0:
            out.append(ErrorRaised.new(component="engine", error_type="Rejected", message="x",
                                       details={"signal_id": sig}))  # fmt: skip
    # shadow paper trades carry experiment and variant themselves
    for i in range(30):
        out.append(_route(f"p{i}", "paper-chal", paper=True))
        out.append(_trade(f"p{i}", 0.002, experiment="e1", variant="paper-chal"))
    out.append(_trade(None, 0.5))  # ordinary trading: joins nothing
    return out


async def test_incremental_equals_rebuilt(event_log: EventLog) -> None:
    events = _scenario()
    live = OutcomeTracker()
    for ev in events:
        live.apply(ev)
        live.apply(ev)  # a redelivery changes nothing
    await event_log.append_many(events)
    rebuilt = await OutcomeTracker.rebuild(event_log)
    assert set(live.stats) == set(rebuilt.stats) == {
        ("e1", "control"), ("e1", "chal"), ("e1", "paper-chal")
    }  # fmt: skip
    for key, st in live.stats.items():
        assert st.to_dict() == pytest.approx(rebuilt.stats[key].to_dict()), key
        assert np.array_equal(st.returns, rebuilt.stats[key].returns), key
    chal = live.stats[("e1", "chal")]
    assert chal.n == 60 and chal.fills == 60 and chal.fees == pytest.approx(3.0)
    assert chal.routed == 60 and chal.errors == 12  # i % 10 == 0: even i, all "chal"
    assert live.stats[("e1", "paper-chal")].n == 30
    assert live.pending == {}
    assert rebuilt.unjoined == live.unjoined == 1


async def test_batched_routes_join_like_single_ones_and_count_once(event_log: EventLog) -> None:
    """The router stores routes in `SignalsRouted` batches; a route stored twice (a redelivered
    batch cut differently) counts once, live and rebuilt from the log."""
    routes = [_route(f"s{i}", "a" if i % 2 else "b") for i in range(6)]
    first = SignalsRouted.new(router="r", routes=routes[:4])
    second = SignalsRouted.new(router="r", routes=routes[2:])  # overlaps the first by two
    trades = [_trade(f"s{i}", 0.01 * (i + 1)) for i in range(6)]
    live = OutcomeTracker()
    for e in [first, second, *trades]:
        assert live.apply(e)
    single = OutcomeTracker()
    for e in [*routes, *trades]:
        single.apply(e)
    await event_log.append_many([first, second, *trades])
    rebuilt = await OutcomeTracker.rebuild(event_log)
    for t in (live, rebuilt):
        assert {k: (s.routed, s.n, s.pnl) for k, s in t.stats.items()} == {
            k: (s.routed, s.n, s.pnl) for k, s in single.stats.items()
        }
    assert live.stats[("e1", "a")].routed == 3 and live.stats[("e1", "b")].n == 3
