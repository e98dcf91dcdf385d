"""Create autoopt's JetStream streams, and compare existing ones with the config.

Why: every process calls `ensure_streams` at start; it must be safe to run any number of times,
concurrently, from any host. A process with a default config (``nats.replicas = 1``) must never
downgrade a stream an operator created with three replicas, nor shorten its retention: an
existing stream is compared with the config and each difference is reported (a warning naming
stream, field, have and want; `autoopt log info` lists them), never applied on the side. Only
``apply=True`` (``autoopt log streams --apply``) changes existing streams, and only in safe
ways: never fewer replicas, never another storage or retention policy, never dropped subjects.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import msgspec
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError

from autoopt.errors import EventLogError
from autoopt.log.connect import NatsSettings
from autoopt.log.retry import is_transient, retrying
from autoopt.subjects import StreamSpec, stream_specs

log = logging.getLogger("autoopt.log")

_ERR_STREAM_NAME_IN_USE = 10058
# compared when the wanted config sets them (CORE leaves subjects and duplicate_window unset)
_FIELDS = (
    "subjects",
    "description",
    "retention",
    "storage",
    "discard",
    "max_age",
    "max_bytes",
    "num_replicas",
    "duplicate_window",
    "allow_direct",
    "sources",
)


class StreamDifference(msgspec.Struct, frozen=True):
    """One setting of an existing stream that is not what the config asks for."""

    field: str
    have: str
    want: str
    safe: bool
    """`apply` may change it (False: fewer replicas, another storage/retention, lost subjects)."""

    def describe(self, stream: str) -> str:
        verdict = "" if self.safe else " (unsafe: never applied automatically)"
        return f"stream {stream}: {self.field} is {self.have}, config wants {self.want}{verdict}"


class StreamChange(msgspec.Struct, frozen=True):
    """What `ensure_streams` found or did for one stream: ``differs`` means the existing stream
    was left as it is although the config asks for something else (see ``differences``)."""

    name: str
    action: Literal["created", "updated", "unchanged", "differs"]
    differences: list[StreamDifference] = msgspec.field(default_factory=list)


def stream_config(spec: StreamSpec, settings: NatsSettings) -> StreamConfig:
    """The JetStream config for one stream spec under these settings."""
    return StreamConfig(
        name=spec.name,
        description=spec.description,
        subjects=list(spec.subjects),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=spec.max_age_s,
        max_bytes=spec.max_bytes,
        num_replicas=settings.replicas,
        duplicate_window=spec.duplicate_window_s,
        allow_direct=True,
    )


def _norm(name: str, value: Any) -> Any:
    if name == "sources":
        return sorted((s.name, s.filter_subject or "") for s in value or [])
    if name == "subjects":
        return sorted(value or [])
    if name == "num_replicas":
        return int(value or 1)
    if isinstance(value, float) or name in ("max_age", "duplicate_window"):
        return round(float(value or 0.0), 6)
    if hasattr(value, "value"):  # an enum
        return value.value
    return value


def _show(name: str, value: Any) -> str:
    if name in ("max_age", "duplicate_window"):
        return f"{value:g}s" if value else "forever" if name == "max_age" else "0s"
    if name == "max_bytes" and value in (-1, None):
        return "unlimited"
    return str(value)


def _safe(name: str, have: Any, want: Any) -> bool:
    if name == "num_replicas":
        return want > have
    if name in ("storage", "retention"):
        return False
    if name in ("subjects", "sources"):
        return set(have) <= set(want)
    return True


def differences(want: StreamConfig, have: StreamConfig) -> list[StreamDifference]:
    """Settings of ``have`` (an existing stream) that differ from ``want`` (the config)."""
    out: list[StreamDifference] = []
    for name in _FIELDS:
        raw = getattr(want, name)
        if raw is None:
            continue
        a, b = _norm(name, raw), _norm(name, getattr(have, name))
        if a != b:
            out.append(StreamDifference(name, _show(name, b), _show(name, a), _safe(name, b, a)))
    return out


async def reconcile(js: JetStreamContext, want: StreamConfig, *, apply: bool = False) -> StreamChange:
    """Create the stream ``want`` names if it is missing; otherwise compare it, warn about each
    difference, and with ``apply`` change only the safe ones (on top of the existing config)."""
    name = str(want.name)
    try:
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            try:
                await js.add_stream(want)
                return StreamChange(name, "created")
            except APIError as exc:
                if exc.err_code != _ERR_STREAM_NAME_IN_USE:  # created concurrently elsewhere
                    raise
                info = await js.stream_info(name)
        diffs = differences(want, info.config)
        if not diffs:
            return StreamChange(name, "unchanged")
        safe = [d for d in diffs if d.safe]
        if apply and safe:
            update = info.config  # the stream as it is, plus the safe changes
            for d in safe:
                setattr(update, d.field, getattr(want, d.field))
            await js.update_stream(update)
            left = [d for d in diffs if not d.safe]
            for d in left:
                log.warning("%s", d.describe(name))
            return StreamChange(name, "updated", left)
        for d in diffs:
            log.warning("%s", d.describe(name))
        return StreamChange(name, "differs", diffs)
    except APIError as exc:
        if is_transient(exc):
            raise  # (no leader yet) the caller retries
        raise EventLogError(
            f"could not create or update stream {name}: {exc.description} (code {exc.err_code})"
        ) from exc


async def ensure_streams(
    js: JetStreamContext, settings: NatsSettings, *, apply: bool = False
) -> list[StreamChange]:
    """Create missing streams and report (with ``apply``: apply the safe part of) differences
    of existing ones; idempotent."""
    changes = []
    for spec in stream_specs(settings.market_max_age_s):
        want = stream_config(spec, settings)
        changes.append(
            await retrying(
                lambda want=want: reconcile(js, want, apply=apply),
                what=f"creating or checking stream {spec.name}",
                deadline_s=3 * settings.request_timeout_s,
            )
        )
    return changes


__all__ = [
    "StreamChange",
    "StreamDifference",
    "differences",
    "ensure_streams",
    "reconcile",
    "stream_config",
]
