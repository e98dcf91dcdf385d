"""How the CLI prints events: common fields first, then the event's own fields as compact JSON.

Nothing is cut: a long event wraps over several terminal lines (``autoopt log replay --json``
prints the exact event, bytes as base64). Only raw bytes (batch columns, dead-letter payloads)
are shown by their length, and floats rounded to 6 digits."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:  # annotations only: `autoopt --help` need not build every event type
    from autoopt.events import Event

_COMMON = {"event_id", "ts_event", "ts_init", "schema", "causation_id", "correlation_id", "type"}


def fmt_ns(ns: int) -> str:
    """ISO-8601 UTC with milliseconds."""
    stamp = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _short(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_short(v) for v in value]
    return value


def summary(event: Event, width: int | None = None) -> str:
    """The event's own fields (not the common ones) as compact JSON; cut at ``width``
    characters only when one is given."""
    fields = {k: v for k, v in msgspec.structs.asdict(event).items() if k not in _COMMON}
    if hasattr(event, "__len__"):
        fields["rows"] = len(event)  # batches say how many rows they hold
    text = msgspec.json.encode(_short(msgspec.to_builtins(fields, enc_hook=str))).decode()
    return text if width is None or len(text) <= width else text[: width - 3] + "..."


def line(event: Event, seq: int | None = None) -> str:
    """The event as one logical line (rich markup; the terminal wraps it, nothing is cut)."""
    from rich.markup import escape  # the event's text is data: never read as markup

    prefix = f"{seq:>8} " if seq is not None else ""
    return (
        f"{prefix}{fmt_ns(event.ts_event)} [bold]{type(event).type_tag():<22}[/bold] "
        f"{escape(f'{event.scope:<12}')} {event.event_id} {escape(summary(event))}"
    )
