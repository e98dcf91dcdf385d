"""The signal router: config applied per variant, shadow mode, and a guardrail rollback end to
end on a real nats-server."""

from __future__ import annotations

import asyncio

from autoopt.ab.decision import ExperimentSupervisor
from autoopt.ab.experiments import (
    ExperimentBook,
    ExperimentService,
    ExperimentSpec,
    Guardrails,
)
from autoopt.ab.router import (
    LIVE_FILTER,
    PAPER_FILTER,
    PASSTHROUGH_SUBJECT,
    SignalRouter,
    route_subject,
)
from autoopt.events import (
    ExperimentStarted,
    SignalEmitted,
    SignalRouted,
    SignalsRouted,
    TradeOutcome,
    VariantAssigned,
    VariantSpec,
    decode,
)
from autoopt.log import EventLog


def _spec(**kw: object) -> ExperimentSpec:
    fields: dict[str, object] = {
        "name": "thr",
        "symbol": "BTCUSDT",
        "variants": [
            VariantSpec(name="control", release_id="r1", weight=0.5),
            VariantSpec(
                name="chal",
                release_id="r2",
                weight=0.5,
                config={"confidence_threshold": 0.7, "size_multiplier": 0.5, "leverage": 2},
            ),
        ],
    }
    fields.update(kw)
    return ExperimentSpec(**fields)  # type: ignore[arg-type]


def _router(**kw: object) -> SignalRouter:
    book = ExperimentBook()
    spec = _spec(**kw)
    spec.validate(declared_keys={"leverage"})
    book.apply(spec.to_event())
    book.apply(ExperimentStarted.new(experiment="thr"))
    return SignalRouter(None, book, declared_keys={"leverage"})  # type: ignore[arg-type]


def _sig(i: int, symbol: str = "BTCUSDT", confidence: float = 0.6, **kw: object) -> SignalEmitted:
    return SignalEmitted.new(
        symbol=symbol, signal_id=f"s{i}", side="long", confidence=confidence, price=100.0, **kw
    )


def test_split_applies_the_variant_config() -> None:
    router = _router()
    seen: dict[str, SignalRouted] = {}
    for i in range(200):
        plan = router.route(_sig(i))
        ((subject, payload),) = plan.deliveries
        routed = decode(payload)
        assert isinstance(routed, SignalRouted) and routed.signal_id == f"s{i}"
        assert subject == route_subject("thr", routed.variant, paper=False)
        assert plan.records == [routed]  # signal units: the route is the assignment record
        seen.setdefault(routed.variant, routed)
    chal, control = seen["chal"], seen["control"]
    assert (chal.side, chal.release_id, chal.size_multiplier) == ("flat", "r2", 0.5)  # 0.6 < 0.7
    assert chal.config == {"leverage": 2}
    assert (control.side, control.release_id, control.size_multiplier) == ("long", "r1", 1.0)
    # a redelivered signal routes the same way, with the same derived event id, in any process
    sig = _sig(3)
    again = decode(router.route(sig).deliveries[0][1])
    first = decode(_router().route(sig).deliveries[0][1])
    assert (again.variant, again.event_id) == (first.variant, first.event_id)


def test_symbol_units_stay_put_and_are_recorded_once() -> None:
    router = _router(symbol="*", unit="symbol")
    variants = {}
    for i in range(30):
        for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"):
            plan = router.route(_sig(i, sym))
            variants.setdefault(sym, set()).add(decode(plan.deliveries[0][1]).variant)
            assert len(plan.records) == (2 if i == 0 else 1)
    assert all(len(v) == 1 for v in variants.values())


def test_unroutable_and_uncovered_signals_pass_through() -> None:
    router = _router(unit="account")
    plan = router.route(_sig(1))  # no extra["account"]
    assert plan.deliveries[0][0] == PASSTHROUGH_SUBJECT and plan.records == []
    assert router.unroutable == 1
    other = router.route(_sig(2, "ETHUSDT"))  # no experiment on this symbol
    assert other.deliveries[0][0] == PASSTHROUGH_SUBJECT
    assert isinstance(decode(other.deliveries[0][1]), SignalEmitted)
    plan = router.route(_sig(3, extra={"account": "acct-7"}))
    assert decode(plan.deliveries[0][1]).unit_key == "acct-7"


def test_shadow_sends_only_the_champion_live() -> None:
    router = _router(shadow=True)
    plan = router.route(_sig(5, confidence=0.9))
    subjects = [s for s, _ in plan.deliveries]
    assert subjects == [
        route_subject("thr", "control", paper=False),
        route_subject("thr", "chal", paper=True),
    ]
    routed = [decode(p) for _, p in plan.deliveries]
    assert [r.paper for r in routed] == [False, True]
    assert routed[1].side == "long"  # 0.9 clears the challenger's threshold
    assert not any(isinstance(r, VariantAssigned) for r in plan.records)


async def _wait_for(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.02)


async def test_guardrail_rollback_end_to_end(event_log: EventLog) -> None:
    """Signals flow through the router; the challenger's trades lose; the supervisor trips the
    loss-streak guardrail and concludes the experiment; the router stops routing to it."""
    svc = ExperimentService(event_log, ExperimentBook(), declared_keys={"leverage"})
    await svc.create(
        _spec(
            guardrails=Guardrails(max_loss_streak=4),
            auto_decide=True,
            variants=[
                VariantSpec(name="control", release_id="r1", weight=0.5),
                VariantSpec(name="chal", release_id="r2", weight=0.5),
            ],
        )
    )
    await svc.start("thr")

    router = SignalRouter(event_log, ExperimentBook())
    supervisor = await ExperimentSupervisor.open(event_log, interval_s=3600)
    stop = asyncio.Event()
    run = asyncio.create_task(router.run(stop, durable="router-test", poll_s=0.05))
    await asyncio.wait_for(router.ready.wait(), 10)

    live: list[SignalEmitted | SignalRouted] = []
    paper: list[SignalRouted] = []

    async def engine(msg) -> None:  # type: ignore[no-untyped-def]
        ev = decode(msg.data)
        live.append(ev)
        if isinstance(ev, SignalRouted):  # trade it: the challenger loses, the champion wins
            ret = -0.01 if ev.variant == "chal" else 0.005
            await event_log.append(
                TradeOutcome.new(
                    cause=ev,
                    step="trade",
                    symbol=ev.symbol,
                    trade_id=f"t-{ev.signal_id}",
                    side=ev.side,
                    qty=1.0,
                    entry_price=100.0,
                    exit_price=100.0 * (1 + ret),
                    fees=0.0,
                    pnl=100.0 * ret,
                    return_=ret,
                    signal_id=ev.signal_id,
                )  # fmt: skip
            )

    async def paper_trader(msg) -> None:  # type: ignore[no-untyped-def]
        paper.append(decode(msg.data))

    subs = [
        await event_log.nc.subscribe(LIVE_FILTER, cb=engine),
        await event_log.nc.subscribe(PASSTHROUGH_SUBJECT, cb=engine),
        await event_log.nc.subscribe(PAPER_FILTER, cb=paper_trader),
    ]
    try:
        await event_log.append_many([_sig(i) for i in range(40)])
        await _wait_for(lambda: len(live) >= 40)
        await _wait_for(lambda: supervisor.service.book.get("thr").status == "concluded")
        concluded = supervisor.service.book.get("thr")
        assert concluded.winner == "control"
        assert "guardrail" in concluded.reason and "loss streak" in concluded.reason
        assert concluded.statistics["variants"]["chal"]["max_loss_streak"] >= 4
        # the router follows the conclusion: new signals no longer reach the challenger
        await _wait_for(lambda: router.book.get("thr").status == "concluded")
        before = len(live)
        await event_log.append_many([_sig(i) for i in range(100, 120)])
        await _wait_for(lambda: len(live) >= before + 20)
        assert all(isinstance(ev, SignalEmitted) for ev in live[before:])
        assert paper == []
        batches = [e async for e in event_log.replay("autoopt.signal.routed_batch.*")]
        assert all(isinstance(b, SignalsRouted) and b.router == "router-test" for b in batches)
        routed = [r for b in batches for r in b.routes]
        assert len({r.event_id for r in routed}) == 40  # every routed signal stored, once
        assert {r.variant for r in routed} == {"control", "chal"}
        assert all(int(r.signal_id[1:]) < 100 for r in routed)
    finally:
        stop.set()
        await run
        for sub in subs:
            await sub.unsubscribe()
        await supervisor.close()
        await router.close()
