"""One exception hierarchy for everything autoopt raises on purpose.

Callers catch `AutooptError` to handle any autoopt failure, or a subclass for one kind.
Each subclass extends the closest builtin too, so generic handlers (`except ValueError`) still work.
"""

from __future__ import annotations


class AutooptError(Exception):
    """Base of every error autoopt raises deliberately."""


class ConfigError(AutooptError, ValueError):
    """The configuration is invalid; the message names the offending key."""


class DataError(AutooptError, ValueError):
    """Market or feature data broke a validation rule; the message names symbol, row and rule."""


class EventLogError(AutooptError):
    """The event log (NATS JetStream) refused or failed an operation."""


class DuplicateEventError(EventLogError):
    """An append carried an event id JetStream had already stored (dedup hit)."""


class SequenceConflictError(EventLogError):
    """An expected-last-sequence append lost a race: someone else appended first."""


class ServerError(EventLogError):
    """The embedded nats-server could not be started, reached or stopped."""


class PluginError(AutooptError):
    """A plugin failed to load or misbehaved; the message names the plugin and the cause."""


class ValidationRejected(AutooptError):
    """A challenger model failed the release gate; `reasons` lists why."""

    def __init__(self, message: str, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = list(reasons or [])


class ArtifactError(AutooptError):
    """A model artifact is missing, corrupt, or its SHA-256 does not match its manifest."""


class ReplayMismatch(AutooptError):
    """Replaying the log did not reproduce the recorded decisions."""


__all__ = [
    "AutooptError",
    "ArtifactError",
    "ConfigError",
    "DataError",
    "DuplicateEventError",
    "EventLogError",
    "PluginError",
    "ReplayMismatch",
    "SequenceConflictError",
    "ServerError",
    "ValidationRejected",
]
