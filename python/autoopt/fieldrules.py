"""The field rules every event obeys, as small checkers that return a problem or None.

Why: an event is validated when it is built, when it is appended and when it is decoded
(`autoopt.events`), so each rule is written once here and kept cheap: decoding runs them on
every message. A checker returns None when the value is fine, else the end of a one-line
message (``"must not be empty"``); the event names its type and field in front of it.

Rules
    id          a non-empty string of at most `MAX_ID_LEN` (256) characters without control
                characters (Unicode category Cc: they would break headers and logs).
    timestamp   an int of Unix nanoseconds in [0, `MAX_TS_NS`] (1970-01-01 .. 2200-01-01), so
                it always fits an int64 and a typo in units (ms for ns) shows.
    finite      a float (or int) that is neither NaN nor infinite: confidences, quantities,
                prices, fees, PnL, reported metric values, drift readings, weights.
    symbol      `autoopt.symbols` grammar; ``scope name`` is the same grammar for experiments,
                studies, routers, components, streams and variants (up to 128 characters).
    enum        one of a fixed set of strings (sides, Optuna trial states, assignment units).
    text        a non-empty string (timeframes, windows, trainers, reasons that must be said).

Speed
    `compile_rules` turns a type's rules into one generated function: each field is screened by
    a cheap inline expression (``fast``: a sound subset of the rule, e.g. an ASCII id or a
    symbol already seen valid), and only a value that fails the screen is judged by the
    checker itself, which alone decides (one code path per decision; the screen only skips
    work). Valid scope values are remembered in a bounded set (`_CACHE_MAX` per rule).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from autoopt.errors import DataError
from autoopt.symbols import ALL_SYMBOLS, name_problem, symbol_problem

Check = Callable[[Any], "str | None"]
Rules = tuple[tuple[str, Check], ...]

MAX_ID_LEN = 256
MAX_TS_NS = 7_258_118_400 * 1_000_000_000  # 2200-01-01T00:00:00Z
_CC = re.compile("[\x00-\x1f\x7f-\x9f]")


_CACHE_MAX = 4096
_FAST: dict[Check, str] = {}  # checker -> screen expression over {v}
_CACHED: set[Check] = set()  # checkers whose valid values are remembered


def _fast(expr: str, cached: bool = False) -> Callable[[Check], Check]:
    """Register ``expr`` (Python over ``{v}``) as the checker's screen; ``cached``: valid values
    are remembered and screened by membership."""

    def register(check: Check) -> Check:
        _FAST[check] = expr
        if cached:
            _CACHED.add(check)
        return check

    return register


def _type_problem(value: object, want: str) -> str:
    return f"must be {want}, got {type(value).__name__}"


@_fast("type({v}) is str and 0 < len({v}) <= MAX_ID_LEN and {v}.isprintable()")
def id_problem(value: Any) -> str | None:
    """See the module doc: non-empty, at most 256 characters, no control characters."""
    if not isinstance(value, str):
        return _type_problem(value, "a string")
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_LEN:
        return f"is {len(value)} characters long (at most {MAX_ID_LEN})"
    if not value.isprintable() and _CC.search(value):
        return "must not contain control characters"
    return None


@_fast("{v} is None or type({v}) is str and 0 < len({v}) <= MAX_ID_LEN and {v}.isprintable()")
def opt_id_problem(value: Any) -> str | None:
    """None, or an id (an empty string is not "no id": leave the field out instead)."""
    return None if value is None else id_problem(value)


@_fast("type({v}) is int and 0 <= {v} <= MAX_TS_NS")
def timestamp_problem(value: Any) -> str | None:
    if type(value) is not int:
        return _type_problem(value, "an int of Unix nanoseconds")
    if 0 <= value <= MAX_TS_NS:
        return None
    return "is outside 1970-01-01 .. 2200-01-01 in Unix nanoseconds"


@_fast("type({v}) is float and -INF < {v} < INF")
def finite_problem(value: Any) -> str | None:
    if type(value) is float:
        return None if math.isfinite(value) else "must be a finite number"
    if type(value) is int:
        return None
    return _type_problem(value, "a number")


@_fast("{v} is None or type({v}) is float and -INF < {v} < INF")
def opt_finite_problem(value: Any) -> str | None:
    return None if value is None else finite_problem(value)


@_fast("type({v}) is float and 0.0 <= {v} < INF")
def nonneg_finite_problem(value: Any) -> str | None:
    problem = finite_problem(value)
    if problem is None and value < 0:
        return "must be >= 0"
    return problem


@_fast("{v} is None or type({v}) is float and 0.0 <= {v} < INF")
def opt_nonneg_finite_problem(value: Any) -> str | None:
    return None if value is None else nonneg_finite_problem(value)


def unit_interval_problem(value: Any) -> str | None:
    """A bucket or share in [0, 1]."""
    problem = finite_problem(value)
    if problem is None and not 0.0 <= value <= 1.0:
        return "must be in [0, 1]"
    return problem


def finite_map_problem(value: Any) -> str | None:
    """A ``{name: number}`` map whose values are all finite."""
    if not isinstance(value, dict):
        return _type_problem(value, "a map")
    for key, item in value.items():
        problem = finite_problem(item)
        if problem is not None:
            return f"[{key!r}] {problem}"
    return None


@_fast("type({v}) is int and {v} >= 0")
def count_problem(value: Any) -> str | None:
    if type(value) is not int:
        return _type_problem(value, "an int")
    return None if value >= 0 else "must be >= 0"


@_fast("type({v}) is int and {v} >= 1")
def schema_problem(value: Any) -> str | None:
    if type(value) is not int:
        return _type_problem(value, "an int")
    return None if value >= 1 else "must be >= 1"


def text_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return _type_problem(value, "a string")
    return None if value.strip() else "must not be empty"


@_fast("type({v}) is str and {v} in {cache}", cached=True)
def symbol_or_all_problem(value: Any) -> str | None:
    """A symbol, or ``"*"`` (every symbol) where the field documents it."""
    return None if value == ALL_SYMBOLS else symbol_problem(value)


@_fast("type({v}) is str and {v} in {cache}", cached=True)
def opt_symbol_problem(value: Any) -> str | None:
    """``""`` (no symbol) or a symbol: for fields whose default is ``""``."""
    return None if value == "" else symbol_problem(value)


@_fast("{v} is None or type({v}) is str and {v} in {cache}", cached=True)
def opt_name_problem(value: Any) -> str | None:
    return None if value is None else name_problem(value)


def sha256_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return _type_problem(value, "a string")
    if len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return None
    return "must be 64 lowercase hex digits"


def opt_sha256_problem(value: Any) -> str | None:
    """``""`` (not recorded: events written before the field existed) or a sha256."""
    return None if value == "" else sha256_problem(value)


def enum(values: Iterable[str]) -> Check:
    """A checker accepting exactly ``values``."""
    allowed = frozenset(values)
    shown = ", ".join(repr(v) for v in sorted(allowed))

    def problem(value: Any) -> str | None:
        if isinstance(value, str) and value in allowed:
            return None
        return f"must be one of {shown}"

    return _fast("type({v}) is str and {v} in {cache}", cached=True)(problem)


for _check in (symbol_problem, name_problem):
    _fast("type({v}) is str and {v} in {cache}", cached=True)(_check)


def _remember(cache: set[Any], value: Any) -> None:
    if len(cache) < _CACHE_MAX:
        cache.add(value)


_KIND = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")


def kind_problem(value: Any) -> str | None:
    """A decision kind: dotted lowercase words (``retrain``, ``ab.promote``)."""
    if isinstance(value, str) and len(value) <= MAX_ID_LEN and _KIND.fullmatch(value):
        return None
    return "must be dotted lowercase words such as 'retrain' or 'ab.promote'"


def compile_rules(type_name: str, rules: Rules) -> Callable[[Any], None]:
    """One function that checks ``rules`` on an object and raises DataError naming
    ``<type_name>.<field>``, the value and the problem at the first broken field."""
    env: dict[str, Any] = {
        "MAX_ID_LEN": MAX_ID_LEN,
        "MAX_TS_NS": MAX_TS_NS,
        "INF": math.inf,
        "_judge": _judge,
        "_remember": _remember,
    }
    screens: list[str] = []
    slow: list[str] = []
    for i, (name, check) in enumerate(rules):
        if not name.isidentifier():
            raise ValueError(f"{type_name}: rule field {name!r} is not an identifier")
        env[f"c{i}"] = check
        cache = f"k{i}"
        if check in _CACHED:
            env[cache] = set()
        screen = _FAST.get(check, "False").replace("{cache}", cache)
        screens.append("(" + screen.replace("{v}", f"(v := obj.{name})", 1).replace("{v}", "v") + ")")
        slow += [
            f"    v = obj.{name}",
            f"    if not ({screen.replace('{v}', 'v')}):",
            f"        _judge({type_name!r}, {name!r}, v, c{i})",
        ]
        if check in _CACHED:
            slow.append(f"        _remember({cache}, v)")
    # every screen passes: done in one expression; else judge field by field, in order
    lines = ["def check(obj):"]
    if screens:
        lines += ["    if " + " and ".join(screens) + ":", "        return None"]
    lines += slow or ["    return None"]
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines), f"<rules of {type_name}>", "exec"), env, namespace)  # noqa: S102
    return namespace["check"]  # type: ignore[no-any-return]


def _judge(type_name: str, name: str, value: Any, check: Check) -> None:
    problem = check(value)
    if problem is not None:
        raise DataError(f"{type_name}.{name} {shown(value)}{problem}")


def shown(value: Any) -> str:
    """A value as an error message shows it (strings cut at 80 characters; containers left
    out), with a trailing space, or ``""``."""
    if isinstance(value, str):
        return repr(value if len(value) <= 80 else value[:77] + "...") + " "
    if value is None or isinstance(value, (int, float)):
        return repr(value) + " "
    return ""


__all__ = [
    "MAX_ID_LEN",
    "MAX_TS_NS",
    "Check",
    "Rules",
    "compile_rules",
    "shown",
    "count_problem",
    "enum",
    "finite_map_problem",
    "finite_problem",
    "id_problem",
    "kind_problem",
    "name_problem",
    "nonneg_finite_problem",
    "opt_finite_problem",
    "opt_id_problem",
    "opt_name_problem",
    "opt_nonneg_finite_problem",
    "opt_symbol_problem",
    "schema_problem",
    "opt_sha256_problem",
    "sha256_problem",
    "symbol_or_all_problem",
    "symbol_problem",
    "text_problem",
    "timestamp_problem",
    "unit_interval_problem",
]
