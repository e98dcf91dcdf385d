"""The continuous pull behind `DurableConsumer.next_batch`, on a real nats-server."""

from __future__ import annotations

import asyncio

import pytest

from autoopt.events import SignalEmitted
from autoopt.log import EventLog
from autoopt.log.pullfeed import PullFeed
from autoopt.subjects import subject_filter_for_type


def _sig(i: int) -> SignalEmitted:
    return SignalEmitted.new(symbol="BTCUSDT", signal_id=f"s{i}", side="long", confidence=0.5)


async def _drain(take, n: int, max_n: int) -> list:  # type: ignore[no-untyped-def]
    got: list = []
    async with asyncio.timeout(20):
        while len(got) < n:
            got.extend(await take(max_n, 0.2))
    return got


async def test_next_batch_hands_over_everything_in_order(event_log: EventLog) -> None:
    consumer = await event_log.durable("feed-order", subject_filter_for_type(SignalEmitted))
    try:
        first = await consumer.next_batch(64, timeout=0.05)  # starts the feed; nothing yet
        assert first == []
        sent = [_sig(i) for i in range(1000)]  # many times the feed's batch of 64
        await event_log.append_many(sent)
        got = await _drain(consumer.next_batch, len(sent), 64)
        assert [d.event.event_id for d in got] == [e.event_id for e in sent]
        assert max(len(b) for b in [got[i : i + 64] for i in range(0, 1000, 64)]) <= 64
        for d in got:
            await d.ack()
        info = await consumer.info()
        assert info.num_pending == 0
    finally:
        await consumer.close()


async def test_expired_requests_are_renewed(event_log: EventLog) -> None:
    """Requests that expire while the stream is idle are replaced (status 408), so messages
    stored long after the feed started still arrive."""
    consumer = await event_log.durable("feed-expiry", subject_filter_for_type(SignalEmitted))
    feed = PullFeed(event_log.nc, consumer._psub._nms, batch=8, expires_s=0.4, heartbeat_s=0.1)
    await feed.start()
    try:
        await asyncio.sleep(1.5)  # several expiries
        assert feed.requests_sent >= 3
        await event_log.append_many([_sig(i) for i in range(20)])
        got = await _drain(feed.take, 20, 8)
        assert len(got) == 20
    finally:
        await feed.close()
        await consumer.close()


async def test_deleted_consumer_is_reported(event_log: EventLog) -> None:
    consumer = await event_log.durable("feed-gone", subject_filter_for_type(SignalEmitted))
    feed = PullFeed(event_log.nc, consumer._psub._nms, batch=8)
    await feed.start()
    try:
        async with asyncio.timeout(10):  # our pull request is waiting on the server
            while (await consumer.info()).num_waiting < 1:
                await asyncio.sleep(0.02)
        await event_log.js.delete_consumer(consumer.stream, "feed-gone")
        async with asyncio.timeout(10):
            while not feed.errors:
                await feed.take(8, 0.05)
        assert "deleted" in feed.errors[-1].lower()
    finally:
        await feed.close()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="batch"):
        PullFeed(None, "x", batch=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="heartbeat_s"):
        PullFeed(None, "x", expires_s=1.0, heartbeat_s=2.0)  # type: ignore[arg-type]
