"""Events: tagged union, msgpack round trip, schema evolution, batches, ids."""

from __future__ import annotations

import hashlib

import msgspec
import numpy as np
import pytest

from autoopt import events as ev
from autoopt.clock import SimulatedClock
from autoopt.errors import DataError
from autoopt.ids import derived_event_id, event_id_time_ms, new_event_id


def test_samples_cover_every_event_type(sample_events: list[ev.Event]) -> None:
    assert {type(e) for e in sample_events} == set(ev.ALL_EVENT_TYPES)


def test_every_event_type_round_trips_through_msgpack(sample_events: list[ev.Event]) -> None:
    for event in sample_events:
        back = ev.decode(ev.encode(event))
        assert type(back) is type(event)
        assert back == event


def test_tags_are_unique_and_shaped_category_dot_type() -> None:
    tags = [t.type_tag() for t in ev.ALL_EVENT_TYPES]
    assert len(tags) == len(set(tags))
    for t in ev.ALL_EVENT_TYPES:
        category, kind = t.type_tag().split(".")
        assert (t.tag_category(), t.tag_type()) == (category, kind)
        assert ev.EVENT_TYPES_BY_TAG[t.type_tag()] is t
        assert t.scope_field in t.__struct_fields__


def test_wire_format_is_a_msgpack_map_with_type_tag() -> None:
    event = ev.ModelPromoted.new(symbol="ETHUSDT", release_id="r9")
    raw = msgspec.msgpack.decode(ev.encode(event))
    assert raw["type"] == "model.promoted"
    assert raw["release_id"] == "r9"
    assert raw["schema"] == 1


def test_old_payload_without_new_fields_decodes_with_defaults() -> None:
    # A writer from before `reason` / `previous_release_id` existed.
    old = msgspec.msgpack.encode(
        {
            "type": "model.promoted",
            "event_id": "e1",
            "ts_event": 1,
            "ts_init": 2,
            "symbol": "BTCUSDT",
            "release_id": "r1",
        }
    )
    event = ev.decode(old)
    assert isinstance(event, ev.ModelPromoted)
    assert event.reason == "" and event.previous_release_id is None and event.schema == 1


def test_newer_payload_with_unknown_fields_still_decodes() -> None:
    newer = msgspec.msgpack.encode(
        {
            "type": "model.promoted",
            "event_id": "e1",
            "ts_event": 1,
            "ts_init": 2,
            "symbol": "BTCUSDT",
            "release_id": "r1",
            "field_from_the_future": [1, 2],
        }
    )
    assert ev.decode(newer).release_id == "r1"


def test_decode_rejects_garbage_and_unknown_tags_with_data_error() -> None:
    with pytest.raises(DataError, match="not a valid autoopt event"):
        ev.decode(b"\xc1\xc1 not msgpack")
    unknown = msgspec.msgpack.encode(
        {"type": "market.nope", "event_id": "e", "ts_event": 1, "ts_init": 1}
    )
    with pytest.raises(DataError, match="market.nope"):
        ev.decode(unknown)
    missing = msgspec.msgpack.encode({"type": "model.promoted", "event_id": "e"})
    with pytest.raises(DataError, match="ts_event|symbol"):
        ev.decode(missing)


def test_bar_batch_columns_round_trip_as_numpy_and_polars() -> None:
    n = 1000
    rng = np.random.default_rng(7)
    close = rng.normal(100, 1, n)
    batch = ev.BarBatch.from_arrays(
        symbol="BTCUSDT",
        timeframe="1m",
        ts=np.arange(n, dtype=np.int64) * 60_000_000_000,
        open=close,
        high=close + 1,
        low=close - 1,
        close=close,
        volume=np.ones(n),
    )
    back = ev.decode(ev.encode(batch))
    assert isinstance(back, ev.BarBatch)
    assert back.n_bars == n
    assert back.ts_event == (n - 1) * 60_000_000_000
    arrays = back.arrays()
    np.testing.assert_array_equal(arrays["close"], close)
    np.testing.assert_array_equal(arrays["high"], close + 1)
    df = back.to_polars()
    assert df.columns == ["ts", "open", "high", "low", "close", "volume"]
    assert df.height == n and df["ts"][1] == 60_000_000_000


def test_bar_batch_rejects_ragged_columns() -> None:
    with pytest.raises(DataError, match="'high' has 2 values, ts has 3"):
        ev.BarBatch.from_arrays(
            symbol="X",
            timeframe="1m",
            ts=[1, 2, 3],
            open=[1, 2, 3],
            high=[1, 2],
            low=[1, 2, 3],
            close=[1, 2, 3],
            volume=[1, 2, 3],
        )
    ragged = msgspec.msgpack.encode(
        {
            "type": "market.bars",
            "event_id": "e",
            "ts_event": 1,
            "ts_init": 1,
            "symbol": "X",
            "timeframe": "1m",
            "ts": b"\0" * 16,
            "open": b"\0" * 16,
            "high": b"\0" * 8,
            "low": b"\0" * 16,
            "close": b"\0" * 16,
            "volume": b"\0" * 16,
        }
    )
    with pytest.raises(DataError, match="high"):
        ev.decode(ragged)


def test_feature_batch_is_column_major() -> None:
    fb = ev.FeatureBatch.from_arrays(
        symbol="X", feature_set="fs", ts=[10, 20], columns={"a": [1.0, 2.0], "b": [3.0, 4.0]}
    )
    arrays = ev.decode(ev.encode(fb)).arrays()
    assert arrays["a"].tolist() == [1.0, 2.0] and arrays["b"].tolist() == [3.0, 4.0]
    assert fb.to_polars().columns == ["ts", "a", "b"]


def test_new_fills_common_fields_from_the_clock() -> None:
    clock = SimulatedClock(start_ns=1_700_000_000_000_000_000)
    event = ev.ExperimentStarted.new(clock=clock, experiment="e1")
    assert event.ts_init == event.ts_event == clock.now_ns()
    assert event_id_time_ms(event.event_id) is not None  # a fresh v7 id, not a derived one
    explicit = ev.ExperimentStarted.new(clock=clock, experiment="e1", ts_event=5)
    assert explicit.ts_event == 5


def test_consequences_get_deterministic_ids_and_follow_the_chain() -> None:
    root = ev.DriftReported.new(
        symbol="X", stream="f", statistic="psi", value=1.0, threshold=0.2, drifted=True
    )
    a = ev.RetrainRequested.new(cause=root, step="retrain", symbol="X", reason="drift")
    b = ev.RetrainRequested.new(cause=root, step="retrain", symbol="X", reason="drift")
    assert a.event_id == b.event_id == derived_event_id(root.event_id, "retrain")
    assert a.causation_id == root.event_id and a.correlation_id == root.event_id
    child = ev.TrainingStarted.new(cause=a, step="train", symbol="X", run_id="r", trainer="t")
    assert child.correlation_id == root.event_id and child.causation_id == a.event_id
    with pytest.raises(ValueError, match="needs a cause"):
        ev.RetrainRequested.new(step="retrain", symbol="X", reason="drift")


def test_new_event_ids_are_unique_and_sorted_in_creation_order() -> None:
    ids = [new_event_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(i[14] == "7" and i[19] in "89ab" for i in ids)  # UUIDv7, RFC variant
    same_instant = [new_event_id(1_000_000_000) for _ in range(10)]
    assert same_instant == sorted(same_instant) and len(set(same_instant)) == 10


def test_derived_ids_are_stable_uuid8_and_depend_on_both_inputs() -> None:
    x = derived_event_id("cause-1", "step")
    # Fixed expectation: same in every process and language (sha256, not hash()).
    assert x == derived_event_id("cause-1", "step")
    assert x[14] == "8" and x[19] in "89ab"
    assert x != derived_event_id("cause-1", "other") != derived_event_id("cause-2", "step")
    assert x == "3a3771db-4d76-8f4c-8bcc-742eb684a50d"  # pinned: ids must never change
    digest = hashlib.sha256(b"cause-1\x1fstep").hexdigest()
    assert x.replace("-", "")[:12] == digest[:12]
    assert event_id_time_ms(x) is None
    with pytest.raises(ValueError, match="causation_id"):
        derived_event_id("", "step")
