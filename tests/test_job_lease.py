"""Job leases (`autoopt.service.lease`) on a real nats-server: one owner per job, waiters see
it done, a gone or stale owner is taken over by exactly one waiter, a KV outage falls back;
and `retry.is_transient` is total on nats-py's key-value errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.js.errors import (
    APIError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    ServiceUnavailableError,
)

from autoopt.config import load_config
from autoopt.events import DecisionMade, TrainingStarted
from autoopt.log import Delivery, EventLog, NatsSettings
from autoopt.log.retry import consumer_gone, is_transient
from autoopt.pipeline.retrain import load_bars
from autoopt.runtime import open_event_log, open_plugins
from autoopt.service.jobs import JobRunner
from autoopt.service.lease import BUCKET, JobLeases
from autoopt.service.metrics import ServiceMetrics
from autoopt.subjects import subject_filter_for_type

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


# ---------------------------------------------------------------- two runners, one decision

_RACE_CONFIG = """
symbols = ["GOOG"]
[pipeline]
models = ["lgbm"]
trials = 3
threads = 1
pruning = false
[policy]
schedule = "off"
cooldown_s = 0
[service]
ack_wait_s = 1
http_port = 0
max_job_age_s = 0
"""


async def test_a_redelivery_while_the_first_attempt_runs_waits_and_the_retrain_runs_once(
    tmp_path: Path, nats_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The race, forced: instance B is handed delivery 2 of the decision while A is running
    delivery 1 (what JetStream does when A's in-progress signals come late). B waits on the
    lease and acks once A is done; the retrain ran once."""
    path = tmp_path / "autoopt.toml"
    path.write_text(_RACE_CONFIG)
    config = load_config(path, environ={"AUTOOPT_DATA_DIR": str(tmp_path / "data"),
                                        "AUTOOPT_NATS_URL": nats_server})
    log_a, log_b = await open_event_log(config), await open_event_log(config)
    try:
        plugins = open_plugins(config)
        await load_bars(plugins.data_source_for("bundled:GOOG"), "bundled:GOOG", ["GOOG"], log_a,
                        batch_rows=1000)
        a = JobRunner(log_a, config, plugins, ServiceMetrics())
        b = JobRunner(log_b, config, open_plugins(config), ServiceMetrics())
        decision = DecisionMade.new(symbol="GOOG", kind="retrain", reason="manual")
        await log_a.append(decision)

        def delivery(n: int) -> Delivery:
            return Delivery(stream="CORE", consumer="autoopt-service", subject="s", seq=1,
                            consumer_seq=n, num_delivered=n, num_pending=0, time_ns=0)

        caplog.set_level(logging.INFO, logger="autoopt.service.jobs")
        first = asyncio.create_task(a.handle(decision, delivery(1)))
        while "retrain of GOOG started" not in caplog.text:  # A holds the lease and runs
            assert not first.done(), first
            await asyncio.sleep(0.05)
        second = asyncio.create_task(b.handle(decision, delivery(2)))
        await asyncio.wait_for(first, 240)
        await asyncio.wait_for(second, 30)
        assert caplog.text.count("retrain of GOOG started") == 1
        assert a.completed == [decision.event_id] and b.completed == []
        assert b._metrics.retrain_jobs.labels("already_done")._value.get() == 1
        started = [e async for e in log_a.replay(subject_filter_for_type(TrainingStarted))]
        assert len(started) == 1
    finally:
        await log_a.close()
        await log_b.close()


async def test_a_lease_bucket_outage_falls_back_to_running_the_job(
    tmp_path: Path, nats_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The bucket vanishes under a running service: the job is run unguarded, with a warning,
    instead of stopping the runner (the results still dedup by id)."""
    config = load_config(environ={"AUTOOPT_DATA_DIR": str(tmp_path), "AUTOOPT_NATS_URL": nats_server,
                                  "AUTOOPT_NATS__REQUEST_TIMEOUT_S": "1"})
    log = await open_event_log(config)
    try:
        runner = JobRunner(log, config, open_plugins(config), ServiceMetrics())
        decision = DecisionMade.new(symbol="GOOG", kind="retrain", reason="manual")
        delivery = Delivery(stream="CORE", consumer="c", subject="s", seq=1, consumer_seq=1,
                            num_delivered=1, num_pending=0, time_ns=0)
        assert (await runner._claim(decision, delivery))[0] == "owned"
        await log.js.delete_key_value(BUCKET)
        caplog.set_level(logging.WARNING, logger="autoopt.service.jobs")
        other = DecisionMade.new(symbol="GOOG", kind="retrain", reason="manual")
        assert await asyncio.wait_for(runner._claim(other, delivery), 60) == ("unguarded", 0)
        assert "running it unguarded" in caplog.text
        third = DecisionMade.new(symbol="GOOG", kind="retrain", reason="manual")
        assert (await runner._claim(third, delivery))[0] == "owned"  # the bucket is back
    finally:
        await log.close()
