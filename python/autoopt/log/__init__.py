"""The event log: NATS JetStream streams of autoopt events, and the embedded server."""

from autoopt.log.connect import NatsSettings, connect_options, tls_context

__all__ = ["NatsSettings", "connect_options", "tls_context"]
