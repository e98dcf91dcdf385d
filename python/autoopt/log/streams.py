"""Create or update autoopt's JetStream streams so they match `autoopt.subjects.stream_specs`.

Why: every process calls `ensure_streams` at start; it must be safe to run any number of times,
concurrently, against a store created by an older autoopt (retention or replicas may change).
"""

from __future__ import annotations

from typing import Literal

import msgspec
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError

from autoopt.errors import EventLogError
from autoopt.log.connect import NatsSettings
from autoopt.subjects import StreamSpec, stream_specs


class StreamChange(msgspec.Struct, frozen=True):
    """What `ensure_streams` did to one stream."""

    name: str
    action: Literal["created", "updated", "unchanged"]


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


def _differs(want: StreamConfig, have: StreamConfig) -> list[str]:
    fields = (
        "subjects",
        "description",
        "max_age",
        "max_bytes",
        "num_replicas",
        "duplicate_window",
        "allow_direct",
    )
    out = []
    for name in fields:
        a, b = getattr(want, name), getattr(have, name)
        if isinstance(a, float) or isinstance(b, float):
            if abs(float(a or 0) - float(b or 0)) > 1e-6:
                out.append(name)
        elif (a or None) != (b or None):
            out.append(name)
    return out


async def ensure_streams(js: JetStreamContext, settings: NatsSettings) -> list[StreamChange]:
    """Create missing streams and update drifted ones; idempotent."""
    changes: list[StreamChange] = []
    for spec in stream_specs(settings.market_max_age_s):
        want = stream_config(spec, settings)
        try:
            try:
                info = await js.stream_info(spec.name)
            except NotFoundError:
                try:
                    await js.add_stream(want)
                    changes.append(StreamChange(spec.name, "created"))
                    continue
                except APIError as exc:
                    if exc.err_code != 10058:  # created concurrently by another process
                        raise
                    info = await js.stream_info(spec.name)
            if _differs(want, info.config):
                await js.update_stream(want)
                changes.append(StreamChange(spec.name, "updated"))
            else:
                changes.append(StreamChange(spec.name, "unchanged"))
        except APIError as exc:
            raise EventLogError(
                f"could not create or update stream {spec.name} ({spec.subjects[0]}): "
                f"{exc.description} (code {exc.err_code})"
            ) from exc
    return changes


__all__ = ["StreamChange", "ensure_streams", "stream_config"]
