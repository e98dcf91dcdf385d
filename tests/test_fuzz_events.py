"""Fuzzing `autoopt.events.decode`: whatever arrives (random bytes, random msgpack maps, real
events with hostile field values), it returns a valid event or raises DataError, never another
exception; every event it returns re-encodes, decodes to itself and validates."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoopt import events as ev
from autoopt import fieldrules as fr
from autoopt.errors import DataError

# bounded: the whole file runs in seconds; sample_events is constant, so sharing it is safe
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

TAGS = sorted(ev.EVENT_TYPES_BY_TAG)
FIELDS = sorted({f for t in ev.ALL_EVENT_TYPES for f in t.__struct_encode_fields__})

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
    st.sampled_from(["", "*", ">", " ", "BTCUSDT", "long", "buy", "COMPLETE", "x" * 300]),
    st.binary(max_size=24),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _check(data: bytes) -> None:
    try:
        event = ev.decode(data)
    except DataError:
        return
    assert isinstance(event, ev.Event)
    event.validate()
    again = ev.encode(event)
    assert ev.encode(ev.decode(again)) == again  # bytes: a NaN inside ``details`` != itself


@FUZZ
@given(st.binary(max_size=256))
def test_random_bytes_decode_or_raise_data_error(data: bytes) -> None:
    _check(data)


@FUZZ
@given(
    st.sampled_from(TAGS),
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), values, max_size=12),
)
def test_random_maps_with_a_real_tag_decode_or_raise_data_error(
    tag: str, fields: dict[str, Any]
) -> None:
    _check(msgspec.msgpack.encode({"type": tag, **fields}))


@FUZZ
@given(st.data())
def test_real_events_with_hostile_field_values(
    sample_events: list[ev.Event], data: st.DataObject
) -> None:
    """A structurally valid event of every type, one to three fields replaced by anything."""
    base = data.draw(st.sampled_from(sample_events))
    wire = msgspec.to_builtins(base, builtin_types=(bytes,))
    keys = [k for k in wire if k != "type"]
    for key in data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True)):
        wire[key] = data.draw(values)
    _check(msgspec.msgpack.encode(wire))


@FUZZ
@given(st.binary(min_size=1, max_size=64), st.integers(min_value=0, max_value=10**6))
def test_corrupted_real_payloads_decode_or_raise_data_error(
    sample_events: list[ev.Event], junk: bytes, at: int
) -> None:
    """A real payload with bytes overwritten or cut: never anything but DataError."""
    raw = ev.encode(sample_events[at % len(sample_events)])
    i = at % len(raw)
    _check(raw[:i] + junk + raw[i + len(junk) :])
    _check(raw[:i])


CHECKERS = [
    fr.id_problem, fr.opt_id_problem, fr.timestamp_problem, fr.finite_problem,
    fr.opt_finite_problem, fr.nonneg_finite_problem, fr.opt_nonneg_finite_problem,
    fr.unit_interval_problem, fr.finite_map_problem, fr.count_problem, fr.schema_problem,
    fr.text_problem, fr.symbol_problem, fr.name_problem, fr.symbol_or_all_problem,
    fr.opt_symbol_problem, fr.opt_name_problem, fr.sha256_problem, fr.kind_problem,
    fr.enum(ev.SIGNAL_SIDES),
]  # fmt: skip


class _Holder:
    f: Any = None


@FUZZ
@given(st.sampled_from(CHECKERS), values, values)
def test_every_generated_screen_agrees_with_its_checker(check: Any, first: Any, second: Any) -> None:
    """The compiled rule (cheap screen, then the checker) raises exactly when the checker
    finds a problem, also for a value seen before (valid values are cached)."""
    compiled = fr.compile_rules("T", (("f", check),))
    for value in (first, second, first):
        holder = _Holder()
        holder.f = value
        problem = check(value)
        if problem is None:
            compiled(holder)
        else:
            with pytest.raises(DataError, match=re.escape(f"T.f {fr.shown(value)}{problem}")):
                compiled(holder)
