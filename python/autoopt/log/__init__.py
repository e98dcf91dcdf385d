"""The event log: autoopt events on NATS JetStream streams, and the embedded nats-server.

`EventLog` appends, replays and consumes; `NatsSettings` says how to connect; with no URL,
`EmbeddedServer` / `ensure_server` run a local server in the data dir.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autoopt.log.connect import NatsSettings, connect_options, tls_context
    from autoopt.log.eventlog import (
        AppendResult,
        Delivered,
        Delivery,
        DurableConsumer,
        EventLog,
        Handler,
        Record,
        StreamStats,
    )
    from autoopt.log.server import (
        EmbeddedServer,
        ServerStatus,
        ensure_server,
        find_nats_server,
        server_status,
        stop_server,
    )
    from autoopt.log.streams import StreamChange, ensure_streams, stream_config

_SUBMODULE = {
    **dict.fromkeys(("NatsSettings", "connect_options", "tls_context"), "connect"),
    **dict.fromkeys(
        ("AppendResult", "Delivered", "Delivery", "DurableConsumer", "EventLog", "Handler",
         "Record", "StreamStats"),
        "eventlog",
    ),
    **dict.fromkeys(
        ("EmbeddedServer", "ServerStatus", "ensure_server", "find_nats_server", "server_status",
         "stop_server"),
        "server",
    ),
    **dict.fromkeys(("StreamChange", "ensure_streams", "stream_config"), "streams"),
}
"""Where each public name lives. Resolved on first access (SPEC 1 style): `autoopt.config`
needs only `NatsSettings`, and every command loads the config, so importing this package must
not import the NATS client and every event type (a quarter of a second of start-up)."""


def __getattr__(name: str) -> Any:
    if name in _SUBMODULE:
        value = getattr(importlib.import_module(f"autoopt.log.{_SUBMODULE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AppendResult",
    "Delivered",
    "Delivery",
    "DurableConsumer",
    "EmbeddedServer",
    "EventLog",
    "Handler",
    "NatsSettings",
    "Record",
    "ServerStatus",
    "StreamChange",
    "StreamStats",
    "connect_options",
    "ensure_server",
    "ensure_streams",
    "find_nats_server",
    "server_status",
    "stop_server",
    "stream_config",
    "tls_context",
]
