"""Subject names and stream layout: the only place that builds a NATS subject for autoopt.

Naming
    ``autoopt.<category>.<type>.<scope>``, four tokens, e.g. ``autoopt.market.bars.BTCUSDT``,
    ``autoopt.model.released.ETH-PERP``, ``autoopt.experiment.started.lgbm_vs_tft``.
    ``<category>.<type>`` is the event's tag (`autoopt.events`); ``<scope>`` is the value of the
    event type's ``scope_field`` (a symbol for most types, the experiment, study, component or
    stream for others). Dead letters go to ``autoopt.deadletter.message.<stream>``.

Scope escaping
    A NATS token may not contain ``.``, ``*``, ``>`` or whitespace and may not be empty. A scope is
    written as is when it only holds ASCII letters, digits and ``- _ : / + = @ ~``; every other
    byte of its UTF-8 form (``%`` included) becomes ``%XX`` (uppercase hex), like URL
    percent-encoding. So ``BTC/USDT`` stays ``BTC/USDT``, ``ES.H25`` becomes ``ES%2EH25``, and
    `unescape_token` inverts it exactly. An empty scope is refused.

Streams
    One stream per category, capturing ``autoopt.<category>.>``; categories never overlap, so each
    subject lives in exactly one stream. Market data may be limited by age (``market_max_age_s``);
    decisions, releases and everything else are kept. The dedup window (how long JetStream
    remembers a ``Nats-Msg-Id``) is longest for low-volume streams, where a retried step may come
    back hours later.
"""

from __future__ import annotations

import functools

import msgspec

from autoopt.errors import DataError
from autoopt.events import DeadLettered, Event

PREFIX = "autoopt"

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:/+=@~")
_HEX = frozenset("0123456789ABCDEF")
_WILDCARDS = frozenset({"*", ">"})


def escape_token(value: str) -> str:
    """``value`` as one valid NATS subject token (see the module doc for the rule)."""
    if not isinstance(value, str) or not value:
        raise DataError(f"subject scope must be a non-empty string, got {value!r}")
    if all(c in _SAFE for c in value):
        return value
    out: list[str] = []
    for c in value:
        if c in _SAFE:
            out.append(c)
        else:
            out.extend(f"%{b:02X}" for b in c.encode("utf-8"))
    return "".join(out)


def unescape_token(token: str) -> str:
    """Inverse of `escape_token`; raises DataError on a malformed escape."""
    if "%" not in token:
        return token
    raw = bytearray()
    i = 0
    while i < len(token):
        c = token[i]
        if c == "%":
            hx = token[i + 1 : i + 3]
            if len(hx) != 2 or not set(hx) <= _HEX:
                raise DataError(f"bad escape {token[i : i + 3]!r} in subject token {token!r}")
            raw.append(int(hx, 16))
            i += 3
        else:
            raw.extend(c.encode("utf-8"))
            i += 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"subject token {token!r} does not unescape to UTF-8: {exc}") from exc


def _check_name(part: str, what: str) -> None:
    if not part or not all(c.islower() or c == "_" or c.isdigit() for c in part):
        raise DataError(f"subject {what} must be lowercase letters, digits or '_', got {part!r}")


def subject(category: str, kind: str, scope: str) -> str:
    """``autoopt.<category>.<kind>.<escaped scope>``: the one subject builder."""
    _check_name(category, "category")
    _check_name(kind, "type")
    return f"{PREFIX}.{category}.{kind}.{escape_token(scope)}"


@functools.lru_cache(maxsize=65_536)
def _subject_cached(tag: str, scope: str) -> str:
    category, kind = tag.split(".", 1)
    return subject(category, kind, scope)


def subject_for(event: Event) -> str:
    """The subject an event is stored under (memoised per (type, scope): this is on every append)."""
    return _subject_cached(type(event).type_tag(), event.scope)


def subject_filter(
    category: str | None = None, kind: str | None = None, scope: str | None = None
) -> str:
    """A filter subject; a part left as None matches anything (``*``), e.g.
    ``subject_filter("model", scope="BTCUSDT") == "autoopt.model.*.BTCUSDT"``."""
    parts = [PREFIX]
    for value, what in ((category, "category"), (kind, "type")):
        if value is None or value in _WILDCARDS:
            parts.append("*")
        else:
            _check_name(value, what)
            parts.append(value)
    parts.append("*" if scope is None or scope in _WILDCARDS else escape_token(scope))
    if parts[1:] == ["*", "*", "*"]:
        return f"{PREFIX}.>"
    return ".".join(parts)


def subject_filter_for_type(event_type: type[Event], scope: str | None = None) -> str:
    """Filter for one event type, optionally one scope."""
    category, kind = event_type.type_tag().split(".", 1)
    return subject_filter(category, kind, scope)


class SubjectParts(msgspec.Struct, frozen=True):
    category: str
    kind: str
    scope: str


def parse_subject(value: str) -> SubjectParts:
    """Split an autoopt subject back into category, type and unescaped scope."""
    tokens = value.split(".")
    if len(tokens) != 4 or tokens[0] != PREFIX:
        raise DataError(
            f"not an autoopt subject (want {PREFIX}.<category>.<type>.<scope>): {value!r}"
        )
    return SubjectParts(tokens[1], tokens[2], unescape_token(tokens[3]))


def deadletter_subject(stream: str) -> str:
    """Where poison messages from ``stream`` are parked."""
    category, kind = DeadLettered.type_tag().split(".", 1)
    return subject(category, kind, stream)


# ------------------------------------------------------------------------------------- streams

DAY_S = 86_400.0


class StreamSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a stream holds and how long. ``max_age_s == 0`` keeps messages forever."""

    name: str
    category: str
    description: str
    max_age_s: float = 0.0
    duplicate_window_s: float = 120.0
    max_bytes: int = -1

    @property
    def subjects(self) -> list[str]:
        return [f"{PREFIX}.{self.category}.>"]


DEFAULT_MARKET_MAX_AGE_S = 30 * DAY_S

_BASE_STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec(
        name="MARKET",
        category="market",
        description="bar and feature batches",
        max_age_s=DEFAULT_MARKET_MAX_AGE_S,
        duplicate_window_s=120.0,
    ),
    StreamSpec(
        name="SIGNALS",
        category="signal",
        description="signals emitted and routed",
        duplicate_window_s=600.0,
    ),
    StreamSpec(
        name="TRADES",
        category="trade",
        description="fills and closed trade outcomes",
        duplicate_window_s=3600.0,
    ),
    StreamSpec(
        name="METRICS",
        category="metrics",
        description="performance metrics, drift",
        duplicate_window_s=3600.0,
    ),
    StreamSpec(
        name="TRAINING",
        category="training",
        description="retrain requests, training runs, Optuna trials",
        duplicate_window_s=DAY_S,
    ),
    StreamSpec(
        name="MODELS",
        category="model",
        description="verdicts, releases, promotions, rollbacks",
        duplicate_window_s=DAY_S,
    ),
    StreamSpec(
        name="EXPERIMENTS",
        category="experiment",
        description="A/B lifecycle and assignments",
        duplicate_window_s=DAY_S,
    ),
    StreamSpec(
        name="RISK", category="risk", description="risk parameter updates", duplicate_window_s=DAY_S
    ),
    StreamSpec(
        name="DECISIONS",
        category="decision",
        description="the core's decisions",
        duplicate_window_s=DAY_S,
    ),
    StreamSpec(
        name="SYSTEM", category="system", description="component errors", duplicate_window_s=3600.0
    ),
    StreamSpec(
        name="DEADLETTER",
        category="deadletter",
        description="poison messages with their error and raw payload",
        duplicate_window_s=DAY_S,
    ),
)


def stream_specs(market_max_age_s: float | None = None) -> tuple[StreamSpec, ...]:
    """All streams; ``market_max_age_s`` overrides MARKET's retention (0 = forever)."""
    if market_max_age_s is None:
        return _BASE_STREAMS
    if market_max_age_s < 0:
        raise DataError(f"market_max_age_s must be >= 0, got {market_max_age_s}")
    out = []
    for spec in _BASE_STREAMS:
        if spec.category == "market":
            window = spec.duplicate_window_s
            if market_max_age_s:
                window = min(window, market_max_age_s)
            spec = msgspec.structs.replace(
                spec, max_age_s=float(market_max_age_s), duplicate_window_s=window
            )
        out.append(spec)
    return tuple(out)


STREAMS: tuple[StreamSpec, ...] = _BASE_STREAMS
_BY_CATEGORY = {s.category: s for s in _BASE_STREAMS}


def stream_name_for_category(category: str) -> str:
    try:
        return _BY_CATEGORY[category].name
    except KeyError:
        raise DataError(
            f"no stream holds category {category!r}; known: {sorted(_BY_CATEGORY)}"
        ) from None


def stream_name_for(event_or_type: Event | type[Event]) -> str:
    """The stream an event (or event type) is stored in."""
    cls = event_or_type if isinstance(event_or_type, type) else type(event_or_type)
    return stream_name_for_category(cls.tag_category())


def stream_name_for_subject(value: str) -> str:
    """The stream capturing a subject or filter (``autoopt.model.>`` -> MODELS)."""
    tokens = value.split(".")
    if len(tokens) < 2 or tokens[0] != PREFIX or tokens[1] in _WILDCARDS:
        raise DataError(f"subject {value!r} does not name one autoopt category")
    return stream_name_for_category(tokens[1])


__all__ = [
    "DEFAULT_MARKET_MAX_AGE_S",
    "PREFIX",
    "STREAMS",
    "StreamSpec",
    "SubjectParts",
    "deadletter_subject",
    "escape_token",
    "parse_subject",
    "stream_name_for",
    "stream_name_for_category",
    "stream_name_for_subject",
    "stream_specs",
    "subject",
    "subject_filter",
    "subject_filter_for_type",
    "subject_for",
    "unescape_token",
]
