"""Job leases (`autoopt.service.lease`) on a real nats-server: one owner per job, waiters see
it done, a gone or stale owner is taken over by exactly one waiter, a KV outage falls back;
and `retry.is_transient` is total on nats-py's key-value errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nats.js.errors import (
    APIError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    ServiceUnavailableError,
)

from autoopt.log import EventLog, NatsSettings
from autoopt.log.retry import consumer_gone, is_transient
from autoopt.service.lease import JobLeases

KEY = "decision-1"


async def _never() -> bool:
    return False


@pytest.fixture
async def logs(nats_settings: NatsSettings) -> AsyncIterator[list[EventLog]]:
    """Three connections, one per 'instance'."""
    opened = [await EventLog.connect(nats_settings, ensure=False) for _ in range(3)]
    try:
        yield opened
    finally:
        for one in opened:
            await one.close()


def test_is_transient_and_consumer_gone_are_total_on_kv_errors() -> None:
    bare = APIError.__new__(APIError)  # no attribute set at all
    for exc in (KeyNotFoundError(), KeyDeletedError(), KeyWrongLastSequenceError(), bare):
        assert is_transient(exc) is False
        assert consumer_gone(exc) is False
    assert is_transient(ServiceUnavailableError(code=503)) is True
    assert is_transient(APIError(code=500, description="no leader")) is True


async def test_a_held_lease_makes_the_other_instance_wait_until_done(logs: list[EventLog]) -> None:
    owner = await JobLeases.open(logs[0], ttl_s=60, poll_s=0.05)
    waiter = await JobLeases.open(logs[1], ttl_s=60, poll_s=0.05)
    claim, rev = await owner.claim(KEY, 1, _never)
    assert claim == "owned"
    waiting = asyncio.create_task(waiter.claim(KEY, 2, _never))
    await asyncio.sleep(0.5)  # many polls: the owner is alive and the lease fresh
    assert not waiting.done()
    await owner.finish(KEY, 1, done=True)
    assert (await asyncio.wait_for(waiting, 10))[0] == "done"
    # a later redelivery acks at once
    assert (await waiter.claim(KEY, 3, _never))[0] == "done"


async def test_the_event_log_saying_done_ends_the_wait(logs: list[EventLog]) -> None:
    owner = await JobLeases.open(logs[0], ttl_s=60, poll_s=0.05)
    waiter = await JobLeases.open(logs[1], ttl_s=60, poll_s=0.05)
    assert (await owner.claim(KEY, 1, _never))[0] == "owned"
    flag = asyncio.Event()

    async def done() -> bool:
        return flag.is_set()

    waiting = asyncio.create_task(waiter.claim(KEY, 2, done))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    flag.set()
    assert (await asyncio.wait_for(waiting, 10))[0] == "done"


async def test_a_failed_attempt_releases_the_lease_to_the_next(logs: list[EventLog]) -> None:
    owner = await JobLeases.open(logs[0], ttl_s=60, poll_s=0.05)
    waiter = await JobLeases.open(logs[1], ttl_s=60, poll_s=0.05)
    assert (await owner.claim(KEY, 1, _never))[0] == "owned"
    waiting = asyncio.create_task(waiter.claim(KEY, 2, _never))
    await asyncio.sleep(0.3)
    await owner.finish(KEY, 1, done=False)
    assert (await asyncio.wait_for(waiting, 10))[0] == "owned"


async def test_a_gone_owner_is_taken_over_by_exactly_one_waiter(
    logs: list[EventLog], nats_settings: NatsSettings
) -> None:
    dying = await EventLog.connect(nats_settings, ensure=False)
    owner = await JobLeases.open(dying, ttl_s=600, poll_s=0.05)
    assert (await owner.claim(KEY, 1, _never))[0] == "owned"
    a = await JobLeases.open(logs[0], ttl_s=600, poll_s=0.05)
    b = await JobLeases.open(logs[1], ttl_s=600, poll_s=0.05)
    tasks = [asyncio.create_task(x.claim(KEY, 2, _never)) for x in (a, b)]
    await asyncio.sleep(0.3)
    assert not any(t.done() for t in tasks)  # the owner is alive: both wait
    await dying.close()  # its connection is gone, as with SIGKILL (the 600 s TTL never passes)
    first, pending = await asyncio.wait(tasks, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    assert len(first) == 1 and first.pop().result()[0] == "owned"
    await asyncio.sleep(0.5)
    (loser,) = pending
    assert not loser.done()  # the winner is alive: the other keeps waiting
    winner = a if tasks[0].done() else b
    await winner.finish(KEY, 2, done=True)
    assert (await asyncio.wait_for(loser, 10))[0] == "done"


async def test_a_hung_owner_is_taken_over_when_its_lease_is_stale(logs: list[EventLog]) -> None:
    owner = await JobLeases.open(logs[0], ttl_s=1.0, poll_s=0.05)
    assert (await owner.claim(KEY, 1, _never))[0] == "owned"  # alive, but never heartbeats
    waiter = await JobLeases.open(logs[1], ttl_s=1.0, poll_s=0.05)
    claim, rev = await asyncio.wait_for(waiter.claim(KEY, 2, _never), 20)
    assert claim == "owned"
    # the old owner's next heartbeat finds it lost and stops instead of stealing it back
    await asyncio.wait_for(owner.heartbeat(KEY, 1, 1), 10)
    entry = await waiter._kv.get(KEY)
    assert entry.revision == rev and b'"attempt":2' in (entry.value or b"")


async def test_heartbeats_keep_a_slow_job_owned(logs: list[EventLog]) -> None:
    owner = await JobLeases.open(logs[0], ttl_s=2.0, poll_s=0.05)
    waiter = await JobLeases.open(logs[1], ttl_s=2.0, poll_s=0.05)
    _, rev = await owner.claim(KEY, 1, _never)
    beat = asyncio.create_task(owner.heartbeat(KEY, 1, rev))
    waiting = asyncio.create_task(waiter.claim(KEY, 2, _never))
    await asyncio.sleep(5)  # 2.5 TTLs: without the heartbeats the waiter would have taken over
    assert not waiting.done()
    beat.cancel()
    await owner.finish(KEY, 1, done=True)
    assert (await asyncio.wait_for(waiting, 10))[0] == "done"
