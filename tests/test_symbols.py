"""The one symbol grammar (`autoopt.symbols`): exchange symbols pass, what would break a subject,
a path or a consumer is refused with one line naming what is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoopt.config import load_config
from autoopt.errors import ConfigError, DataError
from autoopt.symbols import (
    MAX_NAME_LEN,
    MAX_SYMBOL_LEN,
    name_problem,
    parse_symbols,
    symbol_problem,
    validate_symbol,
)

EXCHANGE_SYMBOLS = ["BTCUSDT", "BTC/USDT", "ES.Z26", "EUR-USD", "BRK.B", "6E:CME", "ÄKTIE", "X" * 64]


@pytest.mark.parametrize("symbol", EXCHANGE_SYMBOLS)
def test_exchange_symbols_are_valid(symbol: str) -> None:
    assert symbol_problem(symbol) is None
    assert validate_symbol(symbol) == symbol


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "must not be empty"),
        ("X" * (MAX_SYMBOL_LEN + 1), "65 characters long"),
        ("X" * 500, "500 characters long"),
        ("*", "NATS wildcard"),
        (">", "NATS wildcard"),
        ("BTC*", "NATS wildcard"),
        ("BTC USDT", "whitespace"),
        ("BTC\tUSDT", "whitespace"),
        ("BTC\u3000", "whitespace"),
        ("BTC\x00", "control character"),
        ("BTC\u200b", "control character"),  # zero-width space: not printable
        (7, "must be a string, got int"),
        (None, "must be a string, got NoneType"),
    ],
)
def test_bad_symbols_are_refused_with_one_line(value: object, problem: str) -> None:
    assert problem in (symbol_problem(value) or "")
    with pytest.raises(DataError, match=problem) as info:
        validate_symbol(value, "--symbols")
    message = str(info.value)
    assert message.startswith("--symbols ") and "\n" not in message and len(message) < 200


def test_scope_names_follow_the_grammar_with_more_room() -> None:
    assert name_problem("BTCUSDT.lgbm." + "a" * 16) is None
    assert name_problem("n" * MAX_NAME_LEN) is None
    assert "129 characters" in (name_problem("n" * (MAX_NAME_LEN + 1)) or "")
    assert "wildcard" in (name_problem("exp>") or "")
    assert "empty" in (name_problem("") or "")


def test_symbol_lists_parse_and_refuse_empty_items() -> None:
    assert parse_symbols("BTC/USDT, ES.Z26,EUR-USD") == ["BTC/USDT", "ES.Z26", "EUR-USD"]
    for text in ("", " ", "BTC,,ETH", "BTC,"):
        with pytest.raises(DataError, match="comma-separated list of non-empty symbols"):
            parse_symbols(text)
    with pytest.raises(DataError, match="symbol 'log:\\*' must not contain '\\*'"):
        parse_symbols("BTC,log:*")


@given(st.text(max_size=80))
def test_the_fast_path_agrees_with_the_character_rules(value: str) -> None:
    """Any string: valid exactly when 1..64 printable, non-space characters without * or >."""
    ok = (
        0 < len(value) <= MAX_SYMBOL_LEN
        and all(c.isprintable() and not c.isspace() and c not in "*>" for c in value)
    )
    assert (symbol_problem(value) is None) == ok


def test_config_refuses_a_bad_symbol_naming_its_key(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    ok = load_config(environ=env, overrides={
        "symbols": ["BTC/USDT", "ES.Z26"], "policy": {"symbols": {"EUR-USD": {}}}})  # fmt: skip
    assert ok.symbols == ["BTC/USDT", "ES.Z26"] and list(ok.policy.symbols) == ["EUR-USD"]
    with pytest.raises(ConfigError, match=r"'symbols\[1\]': symbol '' must not be empty"):
        load_config(environ=env, overrides={"symbols": ["BTC", ""]})
    with pytest.raises(ConfigError, match=r"'policy.symbols.log:\*'.*NATS wildcard"):
        load_config(environ=env, overrides={"policy": {"symbols": {"log:*": {}}}})


def _autoopt(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUTOOPT_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "autoopt.cli", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("releases", "show", ""), "error: symbol '' must not be empty"),
        (("releases", "list", "BTC USDT"), "error: symbol 'BTC USDT' must not contain whitespace"),
        (("releases", "rollback", "*"), "error: symbol '*' must not contain '*'"),
        (("retrain", "--source", "bundled:EURUSD", "--symbols", "EURUSD,,GOOG"),
         "error: --symbols 'EURUSD,,GOOG': give a comma-separated list of non-empty symbols"),
        (("retrain", "--source", "bundled:EURUSD", "--symbols", "EURUSD," + "X" * 500),
         "500 characters long (at most 64)"),
        (("ab", "create", "x", "--symbol", ">", "--variant", "a:r1:1"),
         "error: --symbol '>' must not contain '>'"),
    ],
)
def test_cli_refuses_bad_symbols_with_one_line(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    out = _autoopt(tmp_path / "data", *args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_cli_takes_an_exchange_symbol(tmp_path: Path) -> None:
    out = _autoopt(tmp_path / "data", "releases", "list", "BTC/USDT", "--json")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
