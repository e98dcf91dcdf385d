"""Which part of the log a reader wants: event types, a symbol, a start time.

Why one module: `autoopt log replay`, `autoopt why`, the reports and the dashboard all select
events the same way, and the selection is pushed to the server where it can be (a subject filter
per stream), so reading one symbol's releases never pulls every bar of every symbol.

Types are named by tag (``model.released``), by category (``model``: every type of it) or by
class name (``ModelReleased``, any case). A symbol matches an event whose ``symbol`` field or
scope is that symbol; the server filters by it in streams whose every type is scoped by symbol,
and `matches` checks the rest on the client.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from autoopt.errors import ConfigError
from autoopt.events import ALL_EVENT_TYPES, EVENT_TYPES_BY_TAG, Event
from autoopt.subjects import STREAMS, stream_name_for_category, subject_filter

_BY_CLASS = {t.__name__.lower(): t for t in ALL_EVENT_TYPES}
_CATEGORIES = sorted({t.tag_category() for t in ALL_EVENT_TYPES})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def parse_types(text: str | Sequence[str] | None) -> list[type[Event]]:
    """Event types named in ``text`` (comma-separated tags, categories or class names); an
    unknown name is a ConfigError listing what is known. Empty: every type."""
    if text is None:
        return []
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[type[Event]] = []
    for raw in items:
        name = raw.strip()
        if not name:
            continue
        found: list[type[Event]]
        if name in EVENT_TYPES_BY_TAG:
            found = [EVENT_TYPES_BY_TAG[name]]
        elif name.lower() in _BY_CLASS:
            found = [_BY_CLASS[name.lower()]]
        elif name in _CATEGORIES:
            found = [t for t in ALL_EVENT_TYPES if t.tag_category() == name]
        else:
            raise ConfigError(
                f"--type {name!r} is not an event type; use a tag ({', '.join(sorted(EVENT_TYPES_BY_TAG))}) "
                f"or a category ({', '.join(_CATEGORIES)})"
            )
        out.extend(t for t in found if t not in out)
    return out


def parse_since(text: str | None, now_ns: int) -> int | None:
    """``--since``: a duration back from ``now_ns`` (``90s``, ``10m``, ``2h``, ``7d``, ``1w``) or
    an ISO-8601 time (UTC if naive), as Unix ns; ConfigError otherwise."""
    if text is None:
        return None
    m = _DURATION.match(text)
    if m:
        return now_ns - int(float(m.group(1)) * _UNIT_S[m.group(2)] * 1e9)
    try:
        stamp = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--since {text!r} is neither a duration (90s, 10m, 2h, 7d, 1w) nor an ISO-8601 time"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return int(stamp.timestamp() * 1e9)


def replay_targets(
    types: Sequence[type[Event]] = (), symbol: str | None = None
) -> list[str | list[str]]:
    """What to replay, one target per stream (a stream name or subject filters of one stream),
    in the streams' order: every stream, or those holding ``types``; with ``symbol``, each type
    scoped by symbol is narrowed to it by subject (the others are matched on the client)."""
    wanted = list(types) or list(ALL_EVENT_TYPES)
    out: list[str | list[str]] = []
    for spec in STREAMS:
        here = [t for t in wanted if t.tag_category() == spec.category]
        if not here:
            continue
        if not types and symbol is None:
            out.append(stream_name_for_category(spec.category))
            continue
        filters = [
            subject_filter(spec.category, t.tag_type(),
                           symbol if symbol is not None and t.scope_field == "symbol" else None)
            for t in here
        ]
        out.append(list(dict.fromkeys(filters)))
    return out


def matches(event: Event, symbol: str | None) -> bool:
    """True when ``event`` concerns ``symbol`` (its ``symbol`` field or its scope), or no symbol
    is asked for."""
    if symbol is None:
        return True
    return getattr(event, "symbol", None) == symbol or event.scope == symbol


def target_name(target: str | list[str]) -> str:
    """A replay target as one string for messages."""
    return target if isinstance(target, str) else ",".join(target)


__all__ = ["matches", "parse_since", "parse_types", "replay_targets", "target_name"]
