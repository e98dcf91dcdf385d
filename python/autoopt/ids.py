"""Event ids: sortable random ids for new facts, deterministic ids for consequences.

* `new_event_id()` returns a UUIDv7 string (RFC 9562): 48 bits of Unix milliseconds, 12 bits of
  sub-millisecond time, 62 random bits from `os.urandom`. Ids from one process are strictly
  increasing, and ids from different processes sort by creation time to the millisecond.
* `derived_event_id(causation_id, step)` returns a UUIDv8 string built from SHA-256 of the cause and
  the step name. A step that is retried after a crash derives the same id, so JetStream's
  `Nats-Msg-Id` dedup stores its result once.

Python's `hash()` is never used: it is salted per process.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time

_lock = threading.Lock()
_last = 0  # last (ms << 12 | sub-ms) value handed out by this process


def _format(h: str) -> str:
    """The 8-4-4-4-12 layout of 32 hex digits."""
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_event_id(now_ns: int | None = None) -> str:
    """A fresh, time-sortable UUIDv7 string; strictly increasing within this process."""
    global _last
    ns = time.time_ns() if now_ns is None else int(now_ns)
    if ns < 0:
        raise ValueError(f"new_event_id: now_ns must be >= 0, got {ns}")
    ms, rem = divmod(ns, 1_000_000)
    stamp = (ms << 12) | (rem * 4096 // 1_000_000)
    with _lock:
        if stamp <= _last:
            stamp = _last + 1
        _last = stamp
    ms, sub = stamp >> 12, stamp & 0xFFF
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = ((ms & ((1 << 48) - 1)) << 80) | (0x7 << 76) | (sub << 64) | (0b10 << 62) | rand
    return _format(f"{value:032x}")


def derived_event_id(causation_id: str, step: str | int) -> str:
    """A deterministic UUIDv8 string for the event that `step` produces in reaction to `causation_id`.

    The same (cause, step) pair always yields the same id, in every process and language:
    ``sha256(utf8(causation_id) + b"\\x1f" + utf8(str(step)))``, first 16 bytes, with the version
    nibble set to 8 and the variant bits to 0b10.
    """
    if not causation_id:
        raise ValueError("derived_event_id: causation_id must be a non-empty string")
    d = bytearray(
        hashlib.sha256(f"{causation_id}\x1f{step}".encode()).digest()[:16]
    )  # on the router's hot path: byte operations, no big-int arithmetic
    d[6] = (d[6] & 0x0F) | 0x80  # version 8
    d[8] = (d[8] & 0x3F) | 0x80  # variant 0b10
    return _format(d.hex())


def event_id_time_ms(event_id: str) -> int | None:
    """Unix milliseconds embedded in a UUIDv7 id, or None for a derived (v8) or foreign id."""
    h = event_id.replace("-", "")
    if len(h) != 32 or h[12] != "7":
        return None
    try:
        return int(h[:12], 16)
    except ValueError:
        return None


__all__ = ["derived_event_id", "event_id_time_ms", "new_event_id"]
