"""Durable consumers: explicit ack, redelivery after ack_wait, bounded retries, dead letters."""

from __future__ import annotations

import asyncio

from autoopt import events as ev
from autoopt.log import Delivery, EventLog
from autoopt.subjects import deadletter_subject


def _signal(i: int) -> ev.SignalEmitted:
    return ev.SignalEmitted.new(symbol="BTCUSDT", signal_id=f"s{i}", side="long", confidence=0.5)


async def _dead_letters(log: EventLog) -> list[ev.DeadLettered]:
    out = [e async for e in log.replay(deadletter_subject("SIGNALS"))]
    assert all(isinstance(e, ev.DeadLettered) for e in out)
    return out  # type: ignore[return-value]


async def test_unacked_message_is_redelivered_after_ack_wait(event_log: EventLog) -> None:
    event = _signal(1)
    stored = await event_log.append(event)
    consumer = await event_log.durable("svc", "autoopt.signal.>", ack_wait=1.0, max_deliver=3)
    (first,) = await consumer.fetch(1, timeout=2.0)
    assert first.event == event and first.info.num_delivered == 1 and first.info.seq == stored.seq
    # Not acked: nothing else is offered until ack_wait expires, then the same message returns.
    (again,) = await consumer.fetch(1, timeout=5.0)
    assert again.event == event and again.info.num_delivered == 2
    await again.ack()
    assert await consumer.fetch(1, timeout=1.5) == []
    await consumer.close()


async def test_acked_messages_are_not_redelivered_and_durables_resume(event_log: EventLog) -> None:
    events = [_signal(i) for i in range(6)]
    await event_log.append_many(events[:3])
    seen: list[ev.Event] = []
    stop = asyncio.Event()

    async def handler(event: ev.Event, info: Delivery) -> None:
        seen.append(event)
        if len(seen) in (3, 6):
            stop.set()

    await asyncio.wait_for(
        event_log.consume("svc", "autoopt.signal.>", handler, stop=stop, poll_s=0.2), 10
    )
    assert seen == events[:3]
    # A second run of the same durable sees only what came after.
    await event_log.append_many(events[3:])
    stop.clear()
    await asyncio.wait_for(
        event_log.consume("svc", "autoopt.signal.>", handler, stop=stop, poll_s=0.2), 10
    )
    assert seen[3:] == events[3:]
    assert await _dead_letters(event_log) == []


async def test_poison_payload_is_dead_lettered_with_error_and_raw_bytes(
    event_log: EventLog,
) -> None:
    garbage = b"\xc1 definitely not an event"
    ack = await event_log.js.publish("autoopt.signal.emitted.BTCUSDT", garbage)
    good = _signal(2)
    await event_log.append(good)
    handled: list[ev.Event] = []
    stop = asyncio.Event()

    async def handler(event: ev.Event, info: Delivery) -> None:
        handled.append(event)
        stop.set()

    await asyncio.wait_for(
        event_log.consume("svc", "autoopt.signal.>", handler, stop=stop, poll_s=0.2), 10
    )
    assert handled == [good]  # the poison message never reached the handler
    (letter,) = await _dead_letters(event_log)
    assert letter.payload == garbage
    assert letter.seq == ack.seq and letter.stream == "SIGNALS"
    assert letter.subject == "autoopt.signal.emitted.BTCUSDT"
    assert "not a valid autoopt event" in letter.error
    assert letter.consumer == "svc" and letter.deliveries == 1


async def test_handler_failing_every_time_is_dead_lettered_after_max_deliver(
    event_log: EventLog,
) -> None:
    event = _signal(3)
    await event_log.append(event)
    calls: list[int] = []
    stop = asyncio.Event()

    async def handler(e: ev.Event, info: Delivery) -> None:
        calls.append(info.num_delivered)
        if len(calls) == 3:
            stop.set()
        raise RuntimeError(f"model file missing for {e.event_id}")

    task = asyncio.create_task(
        event_log.consume(
            "svc",
            "autoopt.signal.>",
            handler,
            stop=stop,
            max_deliver=3,
            retry_delay_s=0.05,
            poll_s=0.2,
        )
    )
    await asyncio.wait_for(task, 15)
    assert calls == [1, 2, 3]
    (letter,) = await _dead_letters(event_log)
    assert letter.error == f"RuntimeError: model file missing for {event.event_id}"
    assert letter.deliveries == 3
    assert letter.causation_id == event.event_id
    assert ev.decode(letter.payload) == event
    # Terminated: a fresh run of the durable gets nothing more.
    consumer = await event_log.durable("svc", "autoopt.signal.>", max_deliver=3)
    assert await consumer.fetch(1, timeout=1.0) == []


async def test_message_never_acked_is_dead_lettered_past_max_deliver(event_log: EventLog) -> None:
    event = _signal(4)
    await event_log.append(event)
    consumer = await event_log.durable("svc", "autoopt.signal.>", ack_wait=1.0, max_deliver=1)
    (first,) = await consumer.fetch(1, timeout=2.0)  # a worker takes it and "crashes"
    assert first.event == event
    assert await consumer.fetch(1, timeout=3.0) == []  # the redelivery is dead-lettered instead
    (letter,) = await _dead_letters(event_log)
    assert "not acknowledged after 1 deliveries" in letter.error
    assert ev.decode(letter.payload) == event and letter.deliveries == 2


async def test_dead_lettering_twice_is_deduplicated(event_log: EventLog) -> None:
    await event_log.js.publish("autoopt.signal.emitted.X", b"\xc1")
    c1 = await event_log.durable("a", "autoopt.signal.>")
    c2 = await event_log.durable("a", "autoopt.signal.>")
    assert await c1.fetch(1, timeout=1.0) == []
    letters = await _dead_letters(event_log)
    # The dead letter's id derives from (stream, seq, consumer): a second attempt is a dup.
    again = await event_log.append(letters[0])
    assert again.duplicate and len(await _dead_letters(event_log)) == 1
    assert await c2.fetch(1, timeout=0.5) == []
