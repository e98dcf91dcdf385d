"""EventLog against a real nats-server: append, dedup, expected sequence, replay, info."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from autoopt import events as ev
from autoopt.errors import DataError, DuplicateEventError, EventLogError, SequenceConflictError
from autoopt.log import EventLog, NatsSettings
from autoopt.subjects import STREAMS, stream_name_for, subject_for


def _signal(i: int, symbol: str = "BTCUSDT") -> ev.SignalEmitted:
    return ev.SignalEmitted.new(symbol=symbol, signal_id=f"s{i}", side="long", confidence=i / 100)


async def test_every_event_type_round_trips_through_the_server(
    event_log: EventLog, sample_events: list[ev.Event]
) -> None:
    for event in sample_events:
        result = await event_log.append(event)
        assert result.stream == stream_name_for(event) and not result.duplicate
    back: list[ev.Event] = []
    for spec in STREAMS:
        back.extend([e async for e in event_log.replay(spec.name)])
    assert sorted(back, key=lambda e: e.event_id) == sorted(sample_events, key=lambda e: e.event_id)
    for event in back:
        assert type(event) in ev.ALL_EVENT_TYPES


async def test_streams_are_created_idempotently(event_log: EventLog) -> None:
    again = await event_log.ensure_streams()
    assert {c.name for c in again} == {s.name for s in STREAMS}
    assert {c.action for c in again} == {"unchanged"}
    stats = {s.name: s for s in await event_log.info()}
    assert all(s.exists for s in stats.values())
    assert stats["MARKET"].max_age_s == event_log.settings.market_max_age_s


async def test_changed_retention_is_reported_then_applied_on_request(nats_settings: NatsSettings) -> None:
    async with await EventLog.connect(nats_settings):
        pass
    changed = msgspec.structs.replace(nats_settings, market_max_age_s=3600.0)
    async with await EventLog.connect(changed, ensure=False) as log:
        reported = {c.name: c for c in await log.ensure_streams()}
        assert reported["MARKET"].action == "differs"  # compared, never applied on the side
        assert [d.field for d in reported["MARKET"].differences] == ["max_age"]
        actions = {c.name: c.action for c in await log.ensure_streams(apply=True)}
        assert actions["MARKET"] == "updated"
        assert actions["MODELS"] == "unchanged"
        stats = {s.name: s for s in await log.info()}
        assert stats["MARKET"].max_age_s == 3600.0


async def test_duplicate_append_is_stored_once_and_reported(event_log: EventLog) -> None:
    event = _signal(1)
    first = await event_log.append(event)
    second = await event_log.append(event)
    assert not first.duplicate and second.duplicate
    assert second.seq == first.seq
    with pytest.raises(DuplicateEventError, match=event.event_id):
        await event_log.append(event, raise_on_duplicate=True)
    stats = {s.name: s for s in await event_log.info()}
    assert stats["SIGNALS"].messages == 1
    assert [e async for e in event_log.replay("SIGNALS")] == [event]


async def test_append_many_keeps_order_and_reports_duplicates(event_log: EventLog) -> None:
    events = [_signal(i) for i in range(500)]
    await event_log.append(events[10])
    results = await event_log.append_many(events + [events[0]], window=64)
    assert len(results) == 501
    assert results[10].duplicate and results[500].duplicate
    fresh = [r for r in results if not r.duplicate]
    assert len(fresh) == 499
    assert [r.seq for r in fresh] == sorted(r.seq for r in fresh)
    assert results[500].seq == results[0].seq
    replayed = [e async for e in event_log.replay("SIGNALS")]
    assert len(replayed) == 500
    assert {e.event_id for e in replayed} == {e.event_id for e in events}


async def test_append_many_of_nothing_is_nothing(event_log: EventLog) -> None:
    assert await event_log.append_many([]) == []


async def test_expected_sequence_conflict_raises(event_log: EventLog) -> None:
    subject = "autoopt.decision.made.BTCUSDT"
    assert await event_log.last_subject_sequence(subject) == 0
    mine = ev.DecisionMade.new(symbol="BTCUSDT", kind="retrain", reason="drift")
    theirs = ev.DecisionMade.new(symbol="BTCUSDT", kind="retrain", reason="drift")
    stored = await event_log.append_expecting(mine, 0)
    assert await event_log.last_subject_sequence(subject) == stored.seq
    with pytest.raises(SequenceConflictError, match=r"expected .* to be 0, but it is 1"):
        await event_log.append_expecting(theirs, 0)
    # A retry of the winning append is a duplicate, not a conflict.
    retry = await event_log.append_expecting(mine, 0)
    assert retry.duplicate and retry.seq == stored.seq
    # Another subject is independent.
    other = ev.DecisionMade.new(symbol="ETHUSDT", kind="hold", reason="ok")
    assert not (await event_log.append_expecting(other, 0)).duplicate
    after = await event_log.append_expecting(theirs, stored.seq)
    assert after.seq > stored.seq
    with pytest.raises(DataError, match="last_subject_seq"):
        await event_log.append_expecting(theirs, -1)


async def test_replay_by_sequence_range(event_log: EventLog) -> None:
    events = [_signal(i) for i in range(20)]
    results = await event_log.append_many(events)
    seqs = [r.seq for r in results]
    got = [r async for r in event_log.replay_records("SIGNALS", start_seq=seqs[5], end_seq=seqs[9])]
    assert [r.seq for r in got] == seqs[5:10]
    assert [r.event for r in got] == events[5:10]
    assert all(r.subject == subject_for(r.event) for r in got)
    tail = [e async for e in event_log.replay("SIGNALS", start_seq=seqs[15])]
    assert tail == events[15:]


async def test_replay_by_time_range(event_log: EventLog) -> None:
    events = [_signal(i) for i in range(12)]
    for e in events:  # one by one, so storage times strictly increase
        await event_log.append(e)
    records = [r async for r in event_log.replay_records("SIGNALS")]
    times = [r.time_ns for r in records]
    assert times == sorted(times)
    t_from, t_to = times[3], times[8]
    window = [
        r.event async for r in event_log.replay_records("SIGNALS", start_time=t_from, end_time=t_to)
    ]
    assert window == [r.event for r in records if t_from <= r.time_ns <= t_to]
    assert window[0] == events[3] and window[-1] == events[8]
    as_datetime = dt.datetime.fromtimestamp(times[10] / 1e9, tz=dt.UTC)
    late = [e async for e in event_log.replay("SIGNALS", start_time=as_datetime)]
    assert late[-1] == events[-1] and events[0] not in late
    with pytest.raises(DataError, match="timezone-aware"):
        [e async for e in event_log.replay("SIGNALS", start_time=dt.datetime(2020, 1, 1))]


async def test_replay_by_subject_filter_and_across_many_batches(event_log: EventLog) -> None:
    btc = [_signal(i, "BTCUSDT") for i in range(300)]
    eth = [_signal(i, "ETHUSDT") for i in range(300)]
    mixed = [e for pair in zip(btc, eth, strict=True) for e in pair]
    await event_log.append_many(mixed)
    only_eth = [e async for e in event_log.replay("autoopt.signal.emitted.ETHUSDT")]
    assert only_eth == eth
    chunks = [c async for c in event_log.replay_batches("SIGNALS", batch=64)]
    assert len(chunks) >= 600 // 64
    assert [r.event for c in chunks for r in c] == mixed


async def test_replay_of_empty_or_unknown_streams(event_log: EventLog) -> None:
    assert [e async for e in event_log.replay("RISK")] == []
    with pytest.raises(EventLogError, match="NOPE"):
        [e async for e in event_log.replay("NOPE")]
    with pytest.raises(DataError, match="span several streams"):
        [e async for e in event_log.replay(["autoopt.model.>", "autoopt.risk.>"])]


async def test_bar_batches_replay_to_numpy(event_log: EventLog) -> None:
    batches = [
        ev.BarBatch.from_arrays(
            symbol="BTCUSDT",
            timeframe="1m",
            ts=range(i * 1000, (i + 1) * 1000),
            open=[1.0] * 1000,
            high=[2.0] * 1000,
            low=[0.5] * 1000,
            close=[1.5] * 1000,
            volume=[float(i)] * 1000,
        )
        for i in range(5)
    ]
    await event_log.append_many(batches)
    back = [b async for b in event_log.replay("autoopt.market.bars.BTCUSDT")]
    assert sum(b.n_bars for b in back) == 5000
    assert back[3].arrays()["ts"][0] == 3000 and back[4].arrays()["volume"][0] == 4.0


async def test_append_without_stream_is_a_clear_error(nats_settings: NatsSettings) -> None:
    async with await EventLog.connect(nats_settings, ensure=False) as log:
        with pytest.raises(EventLogError, match="no stream captures autoopt.signal.emitted"):
            await log.append(_signal(1))
        with pytest.raises(EventLogError, match="1 of 1 appends failed"):
            await log.append_many([_signal(2)])


async def test_connect_to_nothing_is_a_clear_error(unused_tcp_port: int) -> None:
    settings = NatsSettings(
        urls=[f"nats://127.0.0.1:{unused_tcp_port}"],
        connect_timeout_s=1.0,
        connect_attempts=1,
        reconnect_wait_s=0.05,
    )
    with pytest.raises(EventLogError, match="could not connect to NATS"):
        await EventLog.connect(settings)


async def test_connect_without_url_uses_the_embedded_server(tmp_path) -> None:
    from autoopt.log import server_status

    async with await EventLog.connect(NatsSettings(), data_dir=tmp_path) as log:
        status = server_status(tmp_path)
        assert status.running and log.url.endswith(status.url.rsplit(":", 1)[1])
        await log.append(_signal(1))
    assert not server_status(tmp_path).running  # we were its only user
    with pytest.raises(EventLogError, match="no data_dir"):
        await EventLog.connect(NatsSettings())
