"""Wiring shared by the CLI and the service: config → event log (embedded or remote) → plugins.

Kept separate from both so the CLI, the service and tests open the log the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from autoopt.config import Config

if TYPE_CHECKING:
    from autoopt.log import EventLog
    from autoopt.log.server import EmbeddedServer
    from autoopt.plugins import Plugins

_servers: dict[Path, EmbeddedServer] = {}


def resolve_nats(config: Config) -> Config:
    """The config with ``nats.urls`` filled: the configured URLs, or the embedded server's.

    With no URL configured this starts the embedded nats-server in the data dir, or reuses the
    one another autoopt process already runs there.
    """
    if not config.embedded:
        return config
    from autoopt.log.server import EmbeddedServer

    data = Path(config.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    # Registers this process as a user; the server stops at exit when its last user is gone
    # (unless it was started on purpose with `autoopt server start`).
    server = _servers.get(data)
    if server is None:
        server = _servers[data] = EmbeddedServer(data)
    url = server.start()
    nats = msgspec.structs.replace(config.nats, urls=[url])
    return msgspec.structs.replace(config, nats=nats)


async def open_event_log(config: Config) -> EventLog:
    """Connect to the event log and make sure its streams exist."""
    from autoopt.log import EventLog

    resolved = resolve_nats(config)
    return await EventLog.connect(resolved.nats)


def open_plugins(config: Config) -> Plugins:
    """Load plugins from entry points, honouring ``plugins.disabled``, and configure them."""
    from autoopt.plugins import load_plugins

    plugins = load_plugins(disabled=config.plugins.disabled)
    plugins.hook.autoopt_configure(config=config)
    return plugins
