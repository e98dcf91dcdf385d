"""The one symbol grammar: what autoopt accepts as a market symbol (or any subject scope).

Why: a symbol ends up in NATS subjects, file paths, experiment keys and the CLI. One rule, checked
wherever a symbol enters (events, config, CLI, data sources), keeps a bad one from crashing a
consumer far away from where it came in (an empty scope, a ``*`` acting as a wildcard, a 500-char
subject that drops the connection).

Grammar
    1 to `MAX_SYMBOL_LEN` (64) characters, each printable and not whitespace, and neither ``*`` nor
    ``>`` (NATS wildcards). Anything else exchanges use is fine: ``BTC/USDT``, ``ES.Z26``,
    ``EUR-USD``, ``BRK.B``, ``6E:CME``. Characters that a NATS token cannot hold (``.`` and
    non-ASCII) are escaped in subjects by `autoopt.subjects.escape_token` and come back exactly.

Scope names (experiments, studies, routers, components, streams, variants) follow the same
grammar up to `MAX_NAME_LEN` (128) characters. `ALL_SYMBOLS` (``"*"``) is not a symbol: only
fields that document "every symbol" (an experiment's or a decision's scope) accept it.
"""

from __future__ import annotations

from autoopt.errors import DataError

MAX_SYMBOL_LEN = 64
MAX_NAME_LEN = 128
ALL_SYMBOLS = "*"
_FORBIDDEN = frozenset("*>")


def symbol_problem(value: object, max_len: int = MAX_SYMBOL_LEN) -> str | None:
    """Why ``value`` is not a valid symbol, or None when it is (no exception: for validators
    that collect every problem). ``max_len`` is for `name_problem`."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > max_len:
        return f"is {len(value)} characters long (at most {max_len})"
    # fast path (every event decode runs this): printable ASCII without space or wildcards
    if value.isascii() and value.isprintable():
        if " " in value:
            return "must not contain whitespace"
        if "*" in value or ">" in value:
            c = "*" if "*" in value else ">"
            return f"must not contain {c!r} (a NATS wildcard)"
        return None
    for c in value:
        if c in _FORBIDDEN:
            return f"must not contain {c!r} (a NATS wildcard)"
        if c.isspace():
            return "must not contain whitespace"
        if not c.isprintable():
            return f"must not contain the control character {c!r}"
    return None


def name_problem(value: object) -> str | None:
    """Why ``value`` is not a valid scope name (experiment, study, router, component, stream,
    variant), or None. Names follow the symbol grammar with room for longer names
    (`MAX_NAME_LEN`, 128 characters): they end subjects exactly as symbols do."""
    return symbol_problem(value, MAX_NAME_LEN)


def validate_symbol(value: object, what: str = "symbol") -> str:
    """``value`` if it is a valid symbol, else `DataError` with one line naming ``what``."""
    problem = symbol_problem(value)
    if problem is not None:
        shown = value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "..."
        raise DataError(f"{what} {shown!r} {problem}")
    return value  # type: ignore[return-value]


def parse_symbols(text: str, what: str = "symbols") -> list[str]:
    """A comma-separated symbol list (``"BTC/USDT,ES.Z26"``), each validated; empty items and
    an empty list are refused."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise DataError(f"{what} {text!r}: give a comma-separated list of non-empty symbols")
    return [validate_symbol(p, what.rstrip("s")) for p in parts]


__all__ = [
    "ALL_SYMBOLS",
    "MAX_NAME_LEN",
    "MAX_SYMBOL_LEN",
    "name_problem",
    "parse_symbols",
    "symbol_problem",
    "validate_symbol",
]
