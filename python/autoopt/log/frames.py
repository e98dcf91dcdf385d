"""Many core-NATS publishes as one write: pre-built ``PUB`` frames into nats-py's write buffer.

Why: ``Client.publish`` costs ~2 µs of Python per message (subject checks, building the
command, bookkeeping); the A/B router delivers tens of thousands of signals per second and its
native routing (`autoopt._native.RouteTable`) already produces the wire frames of a whole batch,
so they go out in one buffered write instead.

This uses nats-py's own outgoing buffer (``_send_command`` / ``_flush_pending``, the path
``publish`` takes), so ordering with other publishes, buffering while reconnecting, the
flusher task and ``flush()`` all behave as for ``publish``. Those are private names:
`FrameWriter.supported` checks they exist, and callers fall back to ``publish`` when they
do not (a nats-py release that renamed them). The test suite asserts the installed nats-py is
supported, so an upgrade that breaks this fails CI instead of silently taking the slow path.
"""

from __future__ import annotations

from typing import Any

from nats import errors

_REQUIRED = (
    "_send_command",
    "_flush_pending",
    "_flush_queue",
    "_pending_data_size",
    "_max_pending_size",
    "stats",
)


class FrameWriter:
    """Writes pre-built ``PUB <subject> <size>\\r\\n<payload>\\r\\n`` frames on ``nc``."""

    __slots__ = ("_nc",)

    def __init__(self, nc: Any) -> None:
        if not self.supported(nc):
            raise TypeError(f"{type(nc).__name__} has no nats-py write buffer to add frames to")
        self._nc = nc

    @staticmethod
    def supported(nc: Any) -> bool:
        """Whether ``nc`` is a nats-py client whose write buffer this can use."""
        return all(hasattr(nc, name) for name in _REQUIRED)

    async def write(self, frames: bytes, messages: int, payload_bytes: int) -> None:
        """Queue ``frames`` (``messages`` publishes carrying ``payload_bytes`` in all) exactly
        as that many ``publish`` calls would, with the same connection-state errors."""
        if not frames:
            return
        nc = self._nc
        if nc.is_closed:
            raise errors.ConnectionClosedError
        if nc.is_draining_pubs:
            raise errors.ConnectionDrainingError
        if not nc.is_connected and (
            nc._max_pending_size <= 0 or len(frames) + nc._pending_data_size > nc._max_pending_size
        ):
            raise errors.OutboundBufferLimitError
        nc.stats["out_msgs"] += messages
        nc.stats["out_bytes"] += payload_bytes
        await nc._send_command(frames)
        if nc._flush_queue is not None and nc._flush_queue.empty():
            await nc._flush_pending()


__all__ = ["FrameWriter"]
