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


def native_threads() -> int:
    """Threads the native kernels may use now (fused features, bucketing, KS).

    Why a switch: a service shares its cores with the trading engine and the trainer, so the
    kernels must be fast per core and may be pinned to one. ``AUTOOPT_THREADS`` (read once, at
    the first native call that asks) is a positive integer, or ``auto`` / ``0`` / unset for every
    core; `set_native_threads` overrides it in this process. A bad value is a ConfigError.
    """
    from autoopt import _native
    from autoopt.errors import ConfigError

    try:
        return int(_native.threads())
    except ValueError as e:
        raise ConfigError(str(e)) from None


def set_native_threads(n: int | None) -> None:
    """Caps the native kernels at `n` threads in this process; None returns to AUTOOPT_THREADS."""
    from autoopt import _native
    from autoopt.errors import ConfigError

    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConfigError(f"native threads must be a positive integer or None, got {n!r}")
    try:
        _native.set_threads(0 if n is None else n)
    except ValueError as e:
        raise ConfigError(str(e)) from None
