"""`autoopt serve`: the long-lived service that feeds the decision core and runs its commands."""

from autoopt.service.app import Service, serve
from autoopt.service.core_stream import CORE_STREAM, ensure_core_stream

__all__ = ["CORE_STREAM", "Service", "ensure_core_stream", "serve"]
