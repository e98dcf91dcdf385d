"""The native batch router (`autoopt._native.RouteTable`) against the Python reference
(`SignalRouter.route`): the same deliveries byte for byte, the same records, the same counts;
and what it leaves to Python (other events, payloads only msgspec may judge, redeliveries past
``max_deliver``) is handled in order on a real server, with dead letters for the undecodable."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import msgspec
import pytest

from autoopt.ab.experiments import ExperimentBook, ExperimentService, ExperimentSpec
from autoopt.ab.records import RouteRecords, array_header
from autoopt.ab.router import ROUTE_PREFIX, SignalRouter
from autoopt.clock import SimulatedClock
from autoopt.errors import DataError
from autoopt.events import (
    DeadLettered,
    ExperimentStarted,
    Fill,
    SignalEmitted,
    SignalRouted,
    SignalsRouted,
    VariantAssigned,
    VariantSpec,
    decode,
    encode,
)
from autoopt.fieldrules import MAX_TS_NS
from autoopt.log import EventLog
from autoopt.log.frames import FrameWriter
from autoopt.subjects import deadletter_subject, subject_for

NOW = 1_790_000_000_123_456_789


class RawMsg(msgspec.Struct):
    """The two attributes of a nats-py `Msg` that the native table reads."""

    data: bytes
    reply: str = "$JS.ACK.SIGNALS.ab-router.1.10.10.1790000000000000000.0"


def _book(*specs: ExperimentSpec) -> ExperimentBook:
    book = ExperimentBook()
    for spec in specs:
        spec.validate(declared_keys={"leverage", "venue"})
        book.apply(spec.to_event())
        book.apply(ExperimentStarted.new(experiment=spec.name))
    return book


def _specs() -> list[ExperimentSpec]:
    v = VariantSpec
    return [
        ExperimentSpec(
            name="btc-split",
            symbol="BTCUSDT",
            variants=[
                v(name="control", release_id="r1", weight=0.5),
                v(
                    name="chal",
                    release_id="r2",
                    weight=0.5,
                    config={"confidence_threshold": 0.7, "size_multiplier": 0.5, "leverage": 2},
                ),
            ],
        ),  # fmt: skip
        ExperimentSpec(
            name="eth-accounts",
            symbol="ETHUSDT",
            unit="account",
            coverage=0.8,
            variants=[
                v(
                    name="a",
                    release_id="r1",
                    weight=0.4,
                    config={"venue": {"name": "x", "n": [1, 2.5]}},
                ),
                v(name="b", release_id="r1", weight=0.3, config={"confidence_threshold": 1}),
                v(name="c", release_id="r3", weight=0.3, config={"size_multiplier": 2}),
            ],
        ),  # fmt: skip
        ExperimentSpec(
            name="sol-shadow",
            symbol="SOLUSDT",
            shadow=True,
            variants=[
                v(name="control", release_id="r1", weight=0.34),
                v(name="tft", release_id="r3", weight=0.33),
                v(name="lgbm2", release_id="r4", weight=0.33),
            ],
        ),
    ]


def _payloads(n: int, seed: int) -> list[bytes]:
    """Signals of every shape the router meets, encoded as producers would (some by msgspec
    from the struct, some as plain maps with ints for floats, keys in another order and
    fields this version does not know)."""
    rng = random.Random(seed)
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT"]
    accounts = [None, "", 7, "acct-1", "acct-2", "kontø-é", "アカウント", "x" * 40]
    out = []
    for i in range(n):
        extra: dict[str, Any] = {}
        acct = rng.choice(accounts)
        if acct is not None:
            extra["account"] = acct
        if rng.random() < 0.3:
            extra["tags"] = ["a", {"b": [1, None, True]}, 2.5]
        sig = SignalEmitted(
            event_id=f"ev-{seed}-{i}",
            ts_event=rng.choice([NOW - i * 1000, 0, 2**40, MAX_TS_NS]),
            ts_init=NOW,
            correlation_id=rng.choice([None, f"corr-{i % 7}"]),
            causation_id=rng.choice([None, "cause"]),
            symbol=rng.choice(symbols),
            signal_id=rng.choice([f"s{i}", f"sig-é-{i}", "s" * 250 + str(i)]),
            side=rng.choice(["long", "short", "flat"]),
            confidence=rng.choice([0.1, 0.69, 0.7, 0.95, -2.5]),
            price=rng.choice([None, 101.25, 1e-9]),
            horizon_s=rng.choice([None, 60.0]),
            extra=extra,
        )
        if i % 4 == 0:  # a plain map: an int confidence, keys reversed, an unknown field
            fields = msgspec.to_builtins(sig)
            fields["confidence"] = 1
            fields["future_field"] = {"k": [1, 2]}
            out.append(msgspec.msgpack.encode(dict(reversed(list(fields.items())))))
        else:
            out.append(encode(sig))
    return out


def _frames(frames: bytes) -> list[tuple[str, bytes]]:
    out = []
    while frames:
        head, _, rest = frames.partition(b"\r\n")
        op, subject, size = head.split(b" ")
        assert op == b"PUB"
        n = int(size)
        out.append((subject.decode(), rest[:n]))
        assert rest[n : n + 2] == b"\r\n"
        frames = rest[n + 2 :]
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_native_routing_equals_the_python_reference(seed: int) -> None:
    clock = SimulatedClock(NOW)
    reference = SignalRouter(None, _book(*_specs()), clock=clock)  # type: ignore[arg-type]
    native = SignalRouter(None, _book(*_specs()), clock=clock)  # type: ignore[arg-type]
    payloads = _payloads(600, seed)

    want_deliveries: list[tuple[str, bytes]] = []
    want = RouteRecords()
    for raw in payloads:
        plan = reference.route(decode(raw), raw)  # type: ignore[arg-type]
        want_deliveries += plan.deliveries
        want.add_plan(plan)

    chunk = native.route_table().route([RawMsg(p) for p in payloads], 0, 5, NOW)
    got = RouteRecords()
    native._take_chunk(chunk, NOW, got)

    assert chunk.stop == len(payloads)  # every payload was the native table's to route
    assert _frames(chunk.frames) == want_deliveries  # same subjects, same bytes
    assert (chunk.deliveries, chunk.payload_bytes) == (
        len(want_deliveries),
        sum(len(p) for _, p in want_deliveries),
    )
    assert (native.routed, native.passed, native.unroutable) == (
        reference.routed,
        reference.passed,
        reference.unroutable,
    )
    assert reference.routed > 100 and reference.passed > 100 and reference.unroutable > 10
    # the batch record: the same routes, the same derived id
    (w_batch, *w_others), (g_batch, *g_others) = want.events("r", clock), got.events("r", clock)
    assert encode(g_batch) == encode(w_batch)
    assert isinstance(decode(encode(g_batch)), SignalsRouted)
    assert [encode(e) for e in g_others] == [encode(e) for e in w_others]
    assert all(isinstance(e, VariantAssigned) for e in g_others) and g_others
    eth = native.book.get("eth-accounts")
    assert eth.assigned == reference.book.get("eth-accounts").assigned
    # routed again (redelivery): same routes and ids, no second assignment
    again = native.route_table().route([RawMsg(p) for p in payloads], 0, 5, NOW)
    assert again.routes == chunk.routes and again.new_units == []


def test_routes_read_back_as_signal_routed() -> None:
    native = SignalRouter(None, _book(*_specs()), clock=SimulatedClock(NOW))  # type: ignore[arg-type]
    chunk = native.route_table().route([RawMsg(p) for p in _payloads(50, 9)], 0, 5, NOW)
    routes = msgspec.msgpack.decode(
        array_header(chunk.n_routes) + chunk.routes, type=list[SignalRouted]
    )
    assert len(routes) == chunk.n_routes > 0
    assert {r.experiment for r in routes} <= {"btc-split", "eth-accounts", "sol-shadow"}
    assert all(r.ts_init == NOW for r in routes)


def test_the_table_stops_at_what_python_must_judge() -> None:
    native = SignalRouter(None, _book(*_specs()), clock=SimulatedClock(NOW))  # type: ignore[arg-type]
    good = RawMsg(_payloads(1, 4)[0])
    fill = Fill.new(symbol="BTCUSDT", trade_id="t", side="buy", qty=1.0, price=1.0)
    ext = msgspec.to_builtins(decode(good.data))
    ext["extra"] = {"blob": msgspec.msgpack.Ext(5, b"xy")}  # valid, but only msgspec decodes ext
    cases = [
        RawMsg(encode(fill)),
        RawMsg(b"\xc1 not msgpack"),
        RawMsg(good.data + b"\x00"),  # trailing bytes
        RawMsg(msgspec.msgpack.encode(ext)),
        RawMsg(good.data, reply="$JS.ACK.SIGNALS.ab-router.7.10.10.1.0"),  # past max_deliver 5
        RawMsg(good.data, reply="not-a-js-reply"),
    ]
    table = native.route_table()
    for bad in cases:
        chunk = table.route([good, good, bad, good], 0, 5, NOW)
        assert chunk.stop == 2, bad
        assert len(_frames(chunk.frames)) == chunk.deliveries >= 2
        assert table.route([good, good, bad, good], 3, 5, NOW).stop == 4


def _broken(field: str, value: Any) -> bytes:
    """A signal map (as a hostile producer writes it) with one field broken."""
    fields = msgspec.to_builtins(decode(_payloads(1, 4)[0]))
    fields[field] = value
    return msgspec.msgpack.encode(fields)


BROKEN = [
    ("symbol", ""),
    ("symbol", "X" * 65),
    ("symbol", "*"),
    ("symbol", "BTC>"),
    ("symbol", "BTC USDT"),
    ("symbol", "BTC\nUSDT"),
    ("event_id", ""),
    ("event_id", "e" * 257),
    ("signal_id", ""),
    ("signal_id", "s\x00"),
    ("correlation_id", ""),
    ("causation_id", ""),
    ("release_id", ""),
    ("side", "buy"),
    ("side", ""),
    ("confidence", float("nan")),
    ("confidence", float("inf")),
    ("price", float("-inf")),
    ("horizon_s", -1.0),
    ("ts_event", -5),
    ("ts_event", 2**63 - 1),
    ("ts_init", MAX_TS_NS + 1),
    ("schema", 0),
]


@pytest.mark.parametrize(("field", "value"), BROKEN, ids=[f"{f}={v!r}"[:40] for f, v in BROKEN])
def test_the_table_leaves_a_signal_python_refuses_to_python(field: str, value: Any) -> None:
    """What `decode` now refuses (the router then dead-letters it) is never routed natively."""
    native = SignalRouter(None, _book(*_specs()), clock=SimulatedClock(NOW))  # type: ignore[arg-type]
    good, bad = RawMsg(_payloads(1, 4)[0]), RawMsg(_broken(field, value))
    with pytest.raises(DataError, match=f"SignalEmitted.{field}"):
        decode(bad.data)
    chunk = native.route_table().route([good, bad, good], 0, 5, NOW)
    assert chunk.stop == 1


def test_exotic_valid_symbols_route_natively_or_go_to_python_in_order() -> None:
    """A valid non-ASCII symbol is Python's to judge (the table stops there); valid ASCII
    exchange symbols route natively."""
    native = SignalRouter(None, _book(*_specs()), clock=SimulatedClock(NOW))  # type: ignore[arg-type]
    table = native.route_table()
    for symbol in ("BTC/USDT", "ES.Z26", "EUR-USD", "X" * 64):
        assert table.route([RawMsg(_broken("symbol", symbol))], 0, 5, NOW).stop == 1, symbol
    exotic = RawMsg(_broken("symbol", "ÄKTIE"))
    assert decode(exotic.data).symbol == "ÄKTIE"  # type: ignore[attr-defined]
    assert table.route([exotic], 0, 5, NOW).stop == 0


async def _wait_for(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
async def test_run_routes_in_order_and_dead_letters_the_undecodable(
    event_log: EventLog, native: bool
) -> None:
    svc = ExperimentService(event_log, ExperimentBook(), declared_keys={"leverage", "venue"})
    for spec in _specs():
        await svc.create(spec)
        await svc.start(spec.name)
    router = SignalRouter(event_log, ExperimentBook(), native=native)
    stop = asyncio.Event()
    run = asyncio.create_task(router.run(stop, durable="native-test", poll_s=0.05))
    await asyncio.wait_for(router.ready.wait(), 10)
    got: list[Any] = []

    async def engine(msg: Any) -> None:
        got.append(decode(msg.data))

    # one subscription for routed and passed-through signals: one ordered stream to check
    subs = [await event_log.nc.subscribe(f"{ROUTE_PREFIX}.>", cb=engine)]
    signals = [
        SignalEmitted.new(
            symbol=("BTCUSDT", "ETHUSDT", "XRPUSDT")[i % 3],
            signal_id=f"s{i}",
            side="long",
            confidence=0.9,
            extra={"account": f"a{i % 5}", "blob": msgspec.msgpack.Ext(1, b"z")} if i == 7 else
                  {"account": f"a{i % 5}"},
        )
        for i in range(30)
    ]  # fmt: skip
    subject = subject_for(signals[0])
    dead = deadletter_subject("SIGNALS")
    try:
        nc = event_log.nc
        for i, sig in enumerate(signals):
            await event_log.append(sig)
            if i == 10:  # garbage and a foreign event on the signals subject, mid-stream
                await nc.publish(subject, b"\xc1garbage", headers={"Nats-Msg-Id": "junk-1"})
                fill = Fill.new(symbol="BTCUSDT", trade_id="t", side="buy", qty=1.0, price=1.0)
                await nc.publish(subject, encode(fill), headers={"Nats-Msg-Id": fill.event_id})
                # a hostile producer's signal with an empty symbol: dead-lettered, not routed
                await nc.publish(subject, _broken("symbol", ""), headers={"Nats-Msg-Id": "junk-2"})
        await _wait_for(lambda: len(got) >= 30)
        await asyncio.sleep(0.2)
        assert [g.signal_id for g in got] == [s.signal_id for s in signals]  # in order, once
        assert sum(isinstance(g, SignalRouted) for g in got) == 20  # BTC and ETH are routed
        async with asyncio.timeout(10):
            while len(letters := [e async for e in event_log.replay(dead)]) < 2:
                await asyncio.sleep(0.05)
        assert len(letters) == 2 and all(isinstance(e, DeadLettered) for e in letters)
        assert (
            letters[0].payload == b"\xc1garbage" and "not a valid autoopt event" in letters[0].error
        )
        assert letters[1].payload == _broken("symbol", "") and "SignalEmitted.symbol" in (
            letters[1].error
        )

        def stored() -> int:
            return len(info_routes)

        info_routes: list[SignalRouted] = []

        async def load() -> None:
            info_routes.clear()
            async for b in event_log.replay("autoopt.signal.routed_batch.*"):
                assert isinstance(b, SignalsRouted)
                info_routes.extend(b.routes)

        async with asyncio.timeout(10):
            while stored() < 20:
                await load()
                await asyncio.sleep(0.05)
        assert sorted(r.signal_id for r in info_routes) == sorted(
            g.signal_id for g in got if isinstance(g, SignalRouted)
        )
        assigned = [e async for e in event_log.replay("autoopt.experiment.assigned.*")]
        assert {e.unit_key for e in assigned} == {f"a{i}" for i in range(5)}
    finally:
        stop.set()
        await run
        for sub in subs:
            await sub.unsubscribe()
        await router.close()
    info = await event_log.js.consumer_info("SIGNALS", "native-test")
    assert info.num_ack_pending == 0 and info.num_pending == 0  # everything acked


async def test_frame_writer_publishes_like_publish(event_log: EventLog) -> None:
    nc = event_log.nc
    assert FrameWriter.supported(nc)  # the installed nats-py: the router's fast path is on
    got: list[tuple[str, bytes]] = []

    async def cb(msg: Any) -> None:
        got.append((msg.subject, msg.data))

    sub = await nc.subscribe("frames.>", cb=cb)
    await nc.flush()
    sent = [("frames.a", b"one"), ("frames.b", b""), ("frames.a", bytes(range(256)) * 10)]
    frames = b"".join(b"PUB %s %d\r\n%s\r\n" % (s.encode(), len(p), p) for s, p in sent)
    before = nc.stats["out_msgs"]
    await FrameWriter(nc).write(frames, len(sent), sum(len(p) for _, p in sent))
    await nc.flush()
    await _wait_for(lambda: len(got) == 3)
    assert got == sent and nc.stats["out_msgs"] == before + 3
    await sub.unsubscribe()
    with pytest.raises(TypeError, match="write buffer"):
        FrameWriter(object())
