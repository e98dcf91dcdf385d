"""autoopt.client.Engine on a real nats-server: batched, deduplicated, metrics computed from
outcomes, retrain requests and risk params through the log, and nothing lost while the server is
down (killed with -9 and restarted on the same port and store): events produced meanwhile are
spooled on disk and delivered once it is back, also by a new process's engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from autoopt.client import Engine, rolling_metrics
from autoopt.errors import DataError
from autoopt.events import RiskParamsUpdated, TradeOutcome
from autoopt.log import EventLog, NatsSettings
from autoopt.testing.cluster import NatsCluster


def _settings(url: str) -> NatsSettings:
    return NatsSettings(urls=[url], request_timeout_s=2.0, connect_timeout_s=5.0,
                        max_reconnect_attempts=-1, reconnect_wait_s=0.2)


async def _ids(log: EventLog, stream: str) -> list[str]:
    return [r.event.event_id async for r in log.replay_records(stream)]


async def test_engine_batches_dedups_and_computes_metrics(event_log: EventLog,
                                                         tmp_path: Path) -> None:
    engine = Engine(event_log, spool_dir=tmp_path / "spool", periods_per_year=252.0)
    await engine.start()
    sigs = [await engine.signal("BTCUSDT", "long", 0.6, signal_id=f"s{i}", price=100.0)
            for i in range(300)]
    again = await engine.publish(sigs[0])  # same event id: dropped, not sent twice
    assert again is sigs[0] and engine.duplicates == 1
    for i, (entry, exit_) in enumerate([(100, 101), (100, 99), (100, 102), (50, 49)]):
        await engine.outcome("BTCUSDT", f"t{i}", "long", 1.0, entry, exit_, fees=0.1,
                             signal_id=f"s{i}")
    figures = engine.rolling("BTCUSDT")
    assert figures == rolling_metrics(
        [(1 - 0.1) / 100, (-1 - 0.1) / 100, (2 - 0.1) / 100, (-1 - 0.1) / 50], 252.0)
    reported = await engine.metrics("BTCUSDT")
    await engine.request_retrain("BTCUSDT", "desk asked for it")
    assert await engine.flush()
    assert engine.sent == 300 + 4 + 2 and engine.spooled == 0
    signals = await _ids(event_log, "SIGNALS")
    assert signals == [s.event_id for s in sigs]
    outcomes = [r.event async for r in event_log.replay_records("TRADES")]
    assert [o.return_ for o in outcomes if isinstance(o, TradeOutcome)][1] == pytest.approx(-0.011)
    assert reported.metrics["n_trades"] == 4.0 and reported.metrics["hit_rate"] == 0.5
    with pytest.raises(DataError, match="side"):
        await engine.signal("BTCUSDT", "up", 0.5)
    assert await engine.current_params("BTCUSDT") is None
    await event_log.append(RiskParamsUpdated.new(symbol="BTCUSDT", params={"stop": 0.02}))
    await event_log.append(RiskParamsUpdated.new(symbol="BTCUSDT", params={"stop": 0.03}))
    assert await engine.current_params("BTCUSDT") == {"stop": 0.03}
    await engine.close()


async def test_nothing_lost_while_nats_is_down(nats_node: NatsCluster, tmp_path: Path) -> None:
    """Killed server; an engine closed while it is down (its process exits) and a new engine
    on the same spool, still producing; the server comes back on the same port and store: the
    new engine reconnects and delivers everything, each event once, in order."""
    node = nats_node.nodes["n1"]
    log = await EventLog.connect(_settings(node.url))
    spool = tmp_path / "spool"
    first = Engine(log, spool_dir=spool, ack_timeout_s=1.0)
    await first.start()
    sent = [await first.signal("ETHUSDT", "short", 0.7) for _ in range(200)]
    assert await first.flush()

    node.kill()
    while first.connected:
        await asyncio.sleep(0.05)
    during = [await first.signal("ETHUSDT", "long", 0.55) for _ in range(250)]
    await first.close()  # exits while NATS is down: everything is in the spool
    assert first.spooled == 250 and not first.spool.empty

    second = Engine(log, spool_dir=spool, ack_timeout_s=1.0)
    await second.start()
    during += [await second.signal("ETHUSDT", "flat", 0.5) for _ in range(250)]
    await second.flush()
    assert second.spooled == 250 and second.sent == 0

    node.start()  # same port and store: the client reconnects by itself
    after = [await second.signal("ETHUSDT", "long", 0.6) for _ in range(100)]
    await second.drained(timeout=60)
    stored = await _ids(log, "SIGNALS")
    assert stored == [e.event_id for e in sent + during + after]  # each once, in order
    assert second.spool.empty and second.spool.bytes == 0
    await second.close()
    await log.close()


def test_sync_engine_for_engines_that_are_not_asyncio(nats_server: str, tmp_path: Path) -> None:
    """The blocking facade: each call returns once the event is queued; close sends the rest."""
    import asyncio as aio

    from autoopt.client import SyncEngine
    from autoopt.config import Config

    config = Config(data_dir=str(tmp_path / "data"), nats=NatsSettings(urls=[nats_server]))
    with SyncEngine(config, source="sync-test") as engine:
        sig = engine.signal("GOOG", "long", 0.7, signal_id="g1")
        engine.outcome("GOOG", "t1", "long", 2.0, 100.0, 102.0, fees=0.2, signal_id="g1")
        assert engine.flush()
        assert engine.rolling("GOOG")["n_trades"] == 1.0
        assert engine.sent == 2

    async def stored() -> list[str]:
        log = await EventLog.connect(NatsSettings(urls=[nats_server]))
        try:
            return [r.event.event_id async for r in log.replay_records("SIGNALS")]
        finally:
            await log.close()

    assert aio.run(stored()) == [sig.event_id]


async def test_engines_share_a_connection_with_other_subscribers(event_log: EventLog,
                                                                 tmp_path: Path) -> None:
    """Two engines take their acks from the connection's parser (each its own subscription);
    every other message on the connection still reaches its subscriber, each engine's batches
    (several in flight at once) are stored in the order they were produced, and closing the
    engines in any order leaves the connection as it was."""
    got: list[bytes] = []

    async def side(msg) -> None:  # type: ignore[no-untyped-def]
        got.append(msg.data)

    sub = await event_log.nc.subscribe("side.channel", cb=side)
    first = Engine(event_log, spool_dir=tmp_path / "a", batch_size=64)
    second = Engine(event_log, spool_dir=tmp_path / "b", batch_size=64)
    await first.start()
    await second.start()
    produced: dict[str, list[str]] = {"BTCUSDT": [], "ETHUSDT": []}
    for i in range(200):
        produced["BTCUSDT"].append(
            (await first.signal("BTCUSDT", "long", 0.6, signal_id=f"a{i}")).event_id)
        produced["ETHUSDT"].append(
            (await second.signal("ETHUSDT", "short", 0.4, signal_id=f"b{i}")).event_id)
        if i % 50 == 0:
            await event_log.nc.publish("side.channel", str(i).encode())
    await first.drained(timeout=30)
    await second.drained(timeout=30)
    await event_log.nc.flush(timeout=10)
    async with asyncio.timeout(10):
        while len(got) < 4:
            await asyncio.sleep(0.01)
    assert got == [b"0", b"50", b"100", b"150"]
    assert (first.sent, second.sent, first.spooled, second.spooled) == (200, 200, 0, 0)
    stored = [r.event async for r in event_log.replay_records("SIGNALS")]
    assert len(stored) == 400
    for symbol, ids in produced.items():
        assert [e.event_id for e in stored if e.symbol == symbol] == ids
    await first.close()
    await second.close()
    assert "_process_msg" not in vars(event_log.nc)  # unwound: the class's own method again
    await sub.unsubscribe()


async def test_batches_in_flight_when_nats_dies_are_delivered_once_in_order(
        nats_node: NatsCluster, tmp_path: Path) -> None:
    """The server is killed while several batches wait for their acks: what was not
    acknowledged is spooled in order (stored or not: JetStream drops the copies by Nats-Msg-Id)
    and delivered once the server is back, each event once, in the order produced."""
    node = nats_node.nodes["n1"]
    log = await EventLog.connect(_settings(node.url))
    engine = Engine(log, spool_dir=tmp_path / "spool", batch_size=50, batches_in_flight=4,
                    ack_timeout_s=1.0)
    await engine.start()
    produced = [await engine.signal("ETHUSDT", "long", 0.6) for _ in range(3000)]
    async with asyncio.timeout(30):
        while engine.sent == 0:  # the first batch is in; others are in flight
            await asyncio.sleep(0.001)
    node.kill()
    assert engine.sent < len(produced)
    async with asyncio.timeout(30):
        while engine._in_flight or engine._queue:  # noqa: SLF001  (all of it spooled)
            await asyncio.sleep(0.05)
    assert engine.spooled > 0
    node.start()
    await engine.drained(timeout=60)
    assert await _ids(log, "SIGNALS") == [e.event_id for e in produced]
    await engine.close()
    await log.close()
