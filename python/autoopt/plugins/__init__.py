"""Plugin system: pluggy hook specs, entry-point discovery, component interfaces."""

from autoopt.plugins.hookspecs import hookimpl, hookspec
from autoopt.plugins.lazy import LazyComponent
from autoopt.plugins.manager import (
    ENTRY_POINT_GROUP,
    PluginFailure,
    PluginInfo,
    Plugins,
    load_plugins,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "LazyComponent",
    "PluginFailure",
    "PluginInfo",
    "Plugins",
    "hookimpl",
    "hookspec",
    "load_plugins",
]
