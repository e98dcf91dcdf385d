"""Subjects: one builder, reversible scope escaping, one stream per category."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoopt import events as ev
from autoopt import subjects as sj
from autoopt.errors import DataError
from autoopt.symbols import symbol_problem, validate_symbol


def valid_symbols() -> st.SearchStrategy[str]:
    """Symbols of the grammar, mostly exotic: any printable non-space character but * and >."""
    chars = st.characters(
        blacklist_categories=("Cc", "Cs", "Cf", "Co", "Cn", "Zs", "Zl", "Zp"),
        blacklist_characters="*>",
    )
    return st.text(chars, min_size=1, max_size=64).filter(lambda s: symbol_problem(s) is None)


def test_subject_for_uses_tag_and_scope_field(sample_events: list[ev.Event]) -> None:
    by_type = {type(e): e for e in sample_events}
    assert sj.subject_for(by_type[ev.BarBatch]) == "autoopt.market.bars.BTCUSDT"
    assert sj.subject_for(by_type[ev.SignalEmitted]) == "autoopt.signal.emitted.BTCUSDT"
    assert sj.subject_for(by_type[ev.ModelReleased]) == "autoopt.model.released.BTCUSDT"
    assert sj.subject_for(by_type[ev.ExperimentStarted]) == "autoopt.experiment.started.exp-1"
    assert sj.subject_for(by_type[ev.TrialCompleted]) == "autoopt.training.trial.BTCUSDT-lgbm"
    assert sj.subject_for(by_type[ev.ErrorRaised]) == "autoopt.system.error.trainer%2Elgbm"
    assert sj.subject_for(by_type[ev.DeadLettered]) == sj.deadletter_subject("SIGNALS")
    for event in sample_events:
        parts = sj.parse_subject(sj.subject_for(event))
        assert f"{parts.category}.{parts.kind}" == type(event).type_tag()
        assert parts.scope == event.scope


@pytest.mark.parametrize(
    ("scope", "token"),
    [
        ("BTCUSDT", "BTCUSDT"),
        ("BTC/USDT", "BTC/USDT"),
        ("ES.H25", "ES%2EH25"),
        ("a b", "a%20b"),
        ("x*>", "x%2A%3E"),
        ("100%", "100%25"),
        ("é", "%C3%A9"),
    ],
)
def test_escape_examples(scope: str, token: str) -> None:
    assert sj.escape_token(scope) == token
    assert sj.unescape_token(token) == scope


@given(st.text(min_size=1, max_size=40))
def test_escape_gives_a_valid_token_and_inverts(scope: str) -> None:
    token = sj.escape_token(scope)
    assert token and not any(c in token for c in ".*> \t\r\n")
    assert token.isascii()
    assert sj.unescape_token(token) == scope


def test_bad_scopes_and_tokens_raise_data_error() -> None:
    with pytest.raises(DataError, match="non-empty"):
        sj.escape_token("")
    with pytest.raises(DataError, match=r"ModelPromoted\.symbol '' must not be empty"):
        ev.ModelPromoted.new(symbol="", release_id="r")  # refused before it can reach a subject
    with pytest.raises(DataError, match="bad escape"):
        sj.unescape_token("abc%G1")
    with pytest.raises(DataError, match="not an autoopt subject"):
        sj.parse_subject("other.market.bars.X")
    with pytest.raises(DataError, match="category"):
        sj.subject("Market", "bars", "X")


def test_subject_filters() -> None:
    assert sj.subject_filter("model", scope="BTCUSDT") == "autoopt.model.*.BTCUSDT"
    assert sj.subject_filter("market", "bars") == "autoopt.market.bars.*"
    assert sj.subject_filter() == "autoopt.>"
    assert sj.subject_filter_for_type(ev.BarBatch, "ES.H25") == "autoopt.market.bars.ES%2EH25"


def test_every_category_has_exactly_one_stream() -> None:
    categories = {t.tag_category() for t in ev.ALL_EVENT_TYPES}
    stream_categories = [s.category for s in sj.STREAMS]
    assert len(stream_categories) == len(set(stream_categories))
    assert categories <= set(stream_categories)
    assert len({s.name for s in sj.STREAMS}) == len(sj.STREAMS)
    for t in ev.ALL_EVENT_TYPES:
        name = sj.stream_name_for(t)
        (spec,) = [s for s in sj.STREAMS if s.name == name]
        assert spec.subjects == [f"autoopt.{t.tag_category()}.>"]
    assert sj.stream_name_for_subject("autoopt.model.*.BTCUSDT") == "MODELS"
    with pytest.raises(DataError, match="no stream holds"):
        sj.stream_name_for_subject("autoopt.unknown.x.y")
    with pytest.raises(DataError, match="does not name one"):
        sj.stream_name_for_subject("autoopt.>")


def test_market_retention_is_configurable_and_others_keep_forever() -> None:
    specs = {s.name: s for s in sj.stream_specs(market_max_age_s=3600.0)}
    assert specs["MARKET"].max_age_s == 3600.0
    assert specs["MARKET"].duplicate_window_s <= 3600.0
    assert all(s.max_age_s == 0.0 for n, s in specs.items() if n != "MARKET")
    tiny = {s.name: s for s in sj.stream_specs(market_max_age_s=30.0)}
    assert tiny["MARKET"].duplicate_window_s == 30.0
    forever = {s.name: s for s in sj.stream_specs(market_max_age_s=0)}
    assert forever["MARKET"].max_age_s == 0.0
    with pytest.raises(DataError, match="market_max_age_s"):
        sj.stream_specs(market_max_age_s=-1)


@pytest.mark.parametrize(
    ("symbol", "token"),
    [
        ("BTC/USDT", "BTC/USDT"),
        ("ES.Z26", "ES%2EZ26"),
        ("EUR-USD", "EUR-USD"),
        ("BRK.B", "BRK%2EB"),
        ("6E:CME", "6E:CME"),
        ("100%", "100%25"),
        ("ÄKTIE", "%C3%84KTIE"),
    ],
)
def test_exchange_symbols_escape_and_round_trip_through_subjects(symbol: str, token: str) -> None:
    event = ev.ModelPromoted.new(symbol=symbol, release_id="r1")
    subject = sj.subject_for(event)
    assert subject == f"autoopt.model.promoted.{token}"
    assert sj.parse_subject(subject).scope == symbol
    assert sj.subject_filter("model", scope=symbol) == f"autoopt.model.*.{token}"


@given(valid_symbols())
def test_every_valid_symbol_round_trips_through_one_token(symbol: str) -> None:
    assert validate_symbol(symbol) == symbol
    token = sj.escape_token(symbol)
    assert token and token.isascii() and not any(c in token for c in ".*> \t\r\n")
    assert sj.unescape_token(token) == symbol
    assert sj.parse_subject(sj.subject("market", "bars", symbol)).scope == symbol
