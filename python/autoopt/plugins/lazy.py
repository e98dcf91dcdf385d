"""Lazy components: a plugin registers light metadata; the heavy module is imported on first use.

Why: every autoopt process loads every plugin at start (the CLI, the service, each worker, an
engine's `ModelWatcher`). If registering a component imported its libraries, a LightGBM-only
deployment would hold PyTorch (about 860 MB and 2 s) in every process. A `LazyComponent` is the
registry entry instead: its name, the metadata callers read before using it (a trainer's
``model_type``, a data source's ``scheme``), the ``module:attribute`` that builds it and the
import names it needs. `autoopt.plugins.Plugins` imports the target the first time the
component is asked for (`Plugins.component`), once per process, in the style of Scientific
Python's SPEC 1 (``lazy_loader``).

A component whose dependencies are missing is still listed, with `missing` naming them (found
with ``importlib.util.find_spec``, which imports nothing), and using it raises one
`PluginError` line naming the plugin, the component, what could not be imported and how to
install it.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from autoopt.errors import PluginError


@dataclass(frozen=True)
class LazyComponent:
    """A component's registry entry: metadata now, the object itself on first use.

    ``target`` is ``"package.module:Factory"``; the factory is called with no arguments and its
    result is the component (a class or a function returning an instance). ``requires`` are the
    top-level import names it needs (``("torch", "safetensors")``); ``needs`` says them in words
    for messages (``"PyTorch"``); ``install`` is the command that provides them.
    """

    name: str
    target: str
    requires: tuple[str, ...] = ()
    needs: str = ""
    install: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    plugin: str = ""
    """The plugin that registered the entry (filled in by `Plugins` when it collects them)."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise PluginError(f"a lazy component needs a non-empty string name, got {self.name!r}")
        module, _, attr = self.target.partition(":")
        if not module or not attr:
            raise PluginError(
                f"lazy component {self.name!r}: target {self.target!r} is not 'module:attribute'"
            )

    def __getattr__(self, item: str) -> Any:
        """Metadata (``model_type``, ``scheme``...) without importing anything."""
        metadata = self.__dict__.get("metadata") or {}
        if item in metadata:
            return metadata[item]
        raise AttributeError(
            f"lazy component {self.__dict__.get('name')!r} has no metadata {item!r}; "
            "use Plugins.component() for the component itself"
        )

    def owned_by(self, plugin: str) -> LazyComponent:
        return self if self.plugin == plugin else replace(self, plugin=plugin)

    def missing(self) -> tuple[str, ...]:
        """The required import names that are not installed (nothing is imported)."""
        out = []
        for name in self.requires:
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                out.append(name)
        return tuple(out)

    def describe(self, kind: str) -> str:
        owner = f"plugin {self.plugin!r} " if self.plugin else ""
        return f"{owner}(the {self.name!r} {kind})"

    def unavailable_error(self, kind: str, cause: str) -> PluginError:
        """The one-line error for a component that cannot be built here."""
        what = self.needs or ", ".join(self.requires) or self.target
        hint = f". Install it with: {self.install}" if self.install else ""
        return PluginError(f"{self.describe(kind)} cannot import {what}: {cause}{hint}")

    def load(self, kind: str) -> Any:
        """Import the target and build the component; PluginError (one line) when it cannot."""
        module_name, _, attr = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
            factory = getattr(module, attr)
        except Exception as exc:  # a missing or broken dependency: the component cannot exist
            raise self.unavailable_error(kind, f"{type(exc).__name__}: {exc}") from exc
        try:
            return factory()
        except Exception as exc:
            raise PluginError(
                f"{self.describe(kind)}: {self.target}() failed: {type(exc).__name__}: {exc}"
            ) from exc


__all__ = ["LazyComponent"]
