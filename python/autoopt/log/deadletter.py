"""Dead letters: what a consumer refused, kept whole, and the way back into the log.

Why: a message a consumer cannot decode, validate or handle must neither stop the consumer nor
vanish. Every consumer (durable ones in `DurableConsumer`, the decider's ordered one) builds its
`DeadLettered` record here, so all of them keep the same things: the raw payload bytes, the
original subject, headers, stream and sequence, the consumer that refused it and the reason.
Its id is derived from (stream, sequence, consumer), so the copies written by several instances
of one consumer are stored once.

An operator corrects a letter with `corrected_event`: the payload is read leniently as a
msgpack map, patched, and validated as its event type. The corrected event gets an id derived
from the letter (a repeated resubmit is stored once) and the letter as its cause.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from autoopt.errors import DataError
from autoopt.events import DeadLettered, Event, decode
from autoopt.ids import derived_event_id

RESUBMIT_STEP = "resubmit"
MAX_PAYLOAD = 256 * 1024
"""Bytes of a refused payload a letter keeps: a letter must always fit in a NATS message
(``max_payload`` is 1 MiB by default), even when what was refused nearly filled one; beyond this
the letter keeps the first bytes, the size and the SHA-256 (the original stays in its stream)."""
MAX_TEXT = 4096
"""Characters kept of the reason and of each header value, for the same reason."""
MAX_HEADERS = 64


def dead_letter_event(
    *,
    stream: str,
    subject: str,
    seq: int,
    consumer: str,
    error: str,
    payload: bytes | bytearray | memoryview,
    headers: Mapping[str, Any] | None = None,
    deliveries: int = 0,
    cause: Event | None = None,
    now_ns: int | None = None,
) -> DeadLettered:
    """The `DeadLettered` record of message ``stream``/``seq`` refused by ``consumer``.

    ``cause``: the decoded event when there is one (it links the letter into its causal chain).
    """
    now = time.time_ns() if now_ns is None else now_ns
    raw = bytes(payload)
    kept = raw[:MAX_PAYLOAD]
    items = list((headers or {}).items())[:MAX_HEADERS]
    return DeadLettered(
        event_id=derived_event_id(f"{stream}/{seq}", f"deadletter/{consumer}"),
        ts_event=now,
        ts_init=now,
        causation_id=cause.event_id if cause is not None else None,
        correlation_id=(cause.correlation_id or cause.event_id) if cause is not None else None,
        stream=stream,
        subject=subject,
        seq=seq,
        consumer=consumer,
        error=error[:MAX_TEXT] or "(no reason given)",
        payload=kept,
        deliveries=deliveries,
        headers={str(k)[:256]: str(v)[:MAX_TEXT] for k, v in items},
        payload_size=len(raw),
        payload_sha256=hashlib.sha256(raw).hexdigest(),
        truncated=len(kept) < len(raw),
    )


def payload_map(payload: bytes) -> dict[str, Any]:
    """The payload read leniently as a msgpack map (no event schema applied).

    Raises DataError when it is not msgpack or not a map."""
    try:
        value = msgspec.msgpack.decode(payload)
    except msgspec.DecodeError as exc:
        raise DataError(f"payload is not msgpack: {exc}") from exc
    if not isinstance(value, dict):
        raise DataError(f"payload is a msgpack {type(value).__name__}, not a map")
    return {str(k): v for k, v in value.items()}


def payload_view(payload: bytes) -> Any:
    """A best-effort JSON-able view of a payload: the msgpack value with bytes as base64, or
    None when it is not msgpack at all."""
    try:
        value = msgspec.msgpack.decode(payload)
        return msgspec.json.decode(msgspec.json.encode(value))
    except (msgspec.DecodeError, msgspec.EncodeError, TypeError, ValueError):
        return None


def parse_assignment(text: str) -> tuple[str, Any]:
    """``field=value`` from the command line; the value is JSON when it parses as JSON (numbers,
    booleans, null, lists, maps, quoted strings), else the text itself."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise DataError(f"--set {text!r} is not field=value")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name, value


def resubmit_id(letter: DeadLettered) -> str:
    """The id of the corrected copy of ``letter``: one per letter, however often resubmitted."""
    return derived_event_id(letter.event_id, RESUBMIT_STEP)


def corrected_event(letter: DeadLettered, patch: Mapping[str, Any]) -> Event:
    """The letter's payload as a map, with ``patch`` applied, validated as its event type.

    The result's id is `resubmit_id` and its cause the letter. Raises DataError naming what is
    still wrong."""
    if letter.truncated and not patch:
        raise DataError(
            f"the letter kept {len(letter.payload)} of {letter.payload_size} payload bytes: "
            f"the original is {letter.stream} seq {letter.seq}; give the event with --with")
    try:
        fields = payload_map(letter.payload)
        origin = ""
    except DataError as exc:
        if not patch:
            raise DataError(f"nothing to resubmit: {exc}; give the event with --with") from exc
        fields, origin = {}, f" (the original {exc}; only the given fields were used)"
    fields.update(patch)
    fields["event_id"] = resubmit_id(letter)
    fields["causation_id"] = letter.event_id
    if not fields.get("correlation_id"):
        fields["correlation_id"] = letter.correlation_id or letter.event_id
    try:
        raw = msgspec.msgpack.encode(fields)
    except (msgspec.EncodeError, TypeError) as exc:
        raise DataError(f"corrected event cannot be encoded: {exc}{origin}") from exc
    try:
        return decode(raw)
    except DataError as exc:
        raise DataError(f"corrected event is still invalid: {exc}{origin}") from exc


__all__ = [
    "corrected_event",
    "dead_letter_event",
    "parse_assignment",
    "payload_map",
    "payload_view",
    "resubmit_id",
]
