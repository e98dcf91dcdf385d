"""Wiring shared by the CLI and the service: config → event log (embedded or remote) → plugins.

Kept separate from both so the CLI, the service and tests open the log the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from autoopt.config import Config

if TYPE_CHECKING:
    from autoopt.log import EventLog
    from autoopt.plugins import Plugins


async def open_event_log(config: Config) -> EventLog:
    """Connect to the event log and make sure its streams exist.

    With no NATS URL configured this starts the embedded nats-server in the data dir, or reuses
    the one another autoopt process already runs there; closing the log releases it.
    """
    from autoopt.log import EventLog

    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    return await EventLog.connect(config.nats, data_dir=config.data_dir)


def open_plugins(config: Config) -> Plugins:
    """Load plugins from entry points, honouring ``plugins.disabled``, and configure them."""
    from autoopt.plugins import load_plugins

    plugins = load_plugins(disabled=config.plugins.disabled)
    plugins.hook.autoopt_configure(config=config)
    return plugins
