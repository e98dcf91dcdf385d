"""The event log: autoopt events on NATS JetStream streams, and the embedded nats-server.

`EventLog` appends, replays and consumes; `NatsSettings` says how to connect; with no URL,
`EmbeddedServer` / `ensure_server` run a local server in the data dir.
"""

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
