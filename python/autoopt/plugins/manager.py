"""Discovery and registration of plugins: autoopt's built-ins, then the ``autoopt`` entry points.

The built-in plugins (`DEFAULT_PLUGINS`) ship inside the autoopt package, so one
``pip install autoopt`` gives a working core; they are registered through the same hooks and the
same code path as an entry-point plugin, before the entry points (as pytest and datasette do).

pluggy's own ``load_setuptools_entrypoints`` stops at the first plugin that fails to import;
a production service must not, so entry points are loaded one by one here and each failure
is kept as a `PluginFailure` naming the plugin and its cause while the rest still load.

Components registered as `LazyComponent` entries are listed from their metadata and built on
first use (`Plugins.component`), so loading the plugin set imports no heavy library; one that
cannot be built is recorded as a failure of its plugin and raised as one `PluginError` line.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import logging
import threading
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from autoopt.errors import PluginError
from autoopt.plugins import hookspecs
from autoopt.plugins.lazy import LazyComponent

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "autoopt"

DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("builtin-sources", "autoopt.builtins.sources"),
    ("builtin-ccxt", "autoopt.builtins.ccxt_source"),
    ("builtin-log-source", "autoopt.builtins.log_source"),
    ("builtin-features", "autoopt.builtins.features"),
    ("builtin-validators", "autoopt.builtins.validators"),
    ("builtin-lgbm", "autoopt.builtins.lgbm"),
    ("builtin-risk", "autoopt.builtins.risk"),
    ("builtin-drift", "autoopt.builtins.drift"),
    ("builtin-tft", "autoopt.tft.plugin"),
)
"""autoopt's own plugins: ``(name, module)``. Each module registers light metadata only (heavy
components are `LazyComponent` entries), so loading them all costs no heavy import. An entry
point with one of these names (an old ``autoopt-builtins`` distribution) is skipped."""

LEGACY_MODEL_TYPES = {"lightgbm": "lgbm"}
"""Model types of releases written before manifests recorded their trainer, mapped to the trainer
that loads them (a model type missing here is its trainer's name, as ``"tft"`` is)."""


def trainer_id(trainer: str, model_type: str) -> str:
    """The trainer name a release is loaded with: the one it recorded, else its legacy model type's
    (`LEGACY_MODEL_TYPES`)."""
    return trainer or LEGACY_MODEL_TYPES.get(model_type, model_type)

_COMPONENT_HOOKS = {
    "trainer": "autoopt_register_trainers",
    "validator": "autoopt_register_validators",
    "risk_tuner": "autoopt_register_risk_tuners",
    "data_source": "autoopt_register_data_sources",
    "feature_set": "autoopt_register_feature_sets",
    "drift_detector": "autoopt_register_drift_detectors",
}


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded, and why."""

    name: str
    source: str
    error: str
    detail: str = ""

    def as_error(self) -> PluginError:
        return PluginError(f"plugin {self.name!r} ({self.source}) failed to load: {self.error}")


@dataclass(frozen=True)
class PluginInfo:
    """What `autoopt plugins` shows for one registered plugin."""

    name: str
    version: str
    source: str
    hooks: tuple[str, ...]
    components: tuple[str, ...] = ()
    """``kind name`` of each component it registers; a lazy one whose dependencies are not
    installed says so: ``trainer tft (missing: torch)``."""


@dataclass
class Plugins:
    """The loaded plugin set and typed access to the components it registered."""

    pm: pluggy.PluginManager
    failures: list[PluginFailure] = field(default_factory=list)
    _origin: dict[str, tuple[str, str]] = field(default_factory=dict)
    _cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    _owners: dict[str, dict[str, str]] = field(default_factory=dict)
    _built: dict[tuple[str, str], Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def register(self, plugin: object, name: str, *, version: str = "", source: str = "") -> None:
        """Register an already-imported plugin object (module, class instance)."""
        self.pm.register(plugin, name=name)
        self._origin[name] = (version, source or getattr(plugin, "__name__", type(plugin).__name__))
        self._cache.clear()
        self._owners.clear()
        self._built.clear()

    def info(self) -> list[PluginInfo]:
        """Every registered plugin with its hooks and components (from metadata: nothing heavy
        is imported to list them)."""
        owned: dict[str, list[str]] = {}
        for kind in _COMPONENT_HOOKS:
            for name, item in self.components(kind).items():
                label = f"{kind} {name}"
                missing = item.missing() if isinstance(item, LazyComponent) else ()
                if missing:
                    label += f" (missing: {', '.join(missing)})"
                owned.setdefault(self._owners[kind][name], []).append(label)
        out = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda p: p[0]):
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or ()))
            version, source = self._origin.get(name, ("", ""))
            out.append(
                PluginInfo(
                    name=name, version=version, source=source, hooks=hooks,
                    components=tuple(owned.get(name, ())),
                )
            )
        return out

    def components(self, kind: str) -> dict[str, Any]:
        """All components of one kind (``trainer``, ``data_source``...) by their name, as
        registered: a `LazyComponent` stays an entry (its metadata readable) until
        `component` builds it."""
        if kind not in _COMPONENT_HOOKS:
            raise PluginError(f"unknown component kind {kind!r}; known: {sorted(_COMPONENT_HOOKS)}")
        if kind in self._cache:
            return self._cache[kind]
        hook = getattr(self.pm.hook, _COMPONENT_HOOKS[kind])
        found: dict[str, Any] = {}
        owners: dict[str, str] = {}
        for impl in reversed(hook.get_hookimpls()):
            try:
                items = impl.function() or []
            except Exception as exc:  # a broken plugin must not take the others down
                failure = PluginFailure(impl.plugin_name, "hook " + hook.name, repr(exc))
                self.failures.append(failure)
                log.error("%s", failure.as_error())
                continue
            for item in items:
                if isinstance(item, LazyComponent):
                    item = item.owned_by(impl.plugin_name)
                name = getattr(item, "name", None)
                if not isinstance(name, str) or not name:
                    raise PluginError(
                        f"plugin {impl.plugin_name!r} registered a {kind} without a string `name`: {item!r}"
                    )
                if name in found:
                    raise PluginError(
                        f"{kind} {name!r} is registered twice: by plugin {owners[name]!r} "
                        f"and by plugin {impl.plugin_name!r}"
                    )
                found[name] = item
                owners[name] = impl.plugin_name
        self._cache[kind] = found
        self._owners[kind] = owners
        return found

    def component(self, kind: str, name: str) -> Any:
        """One component by name, built on first use if it was registered lazily, or a
        PluginError: listing what is available, or saying why it cannot be built here."""
        entry = self._entry(kind, name)
        if not isinstance(entry, LazyComponent):
            return entry
        with self._lock:  # one build per process, even when worker threads ask at once
            key = (kind, name)
            if key not in self._built:
                try:
                    self._built[key] = entry.load(kind)
                except PluginError as exc:
                    self._built[key] = exc
                    failure = PluginFailure(entry.plugin, f"{kind} {name} ({entry.target})", str(exc))
                    self.failures.append(failure)
                    log.error("%s", exc)
            built = self._built[key]
        if isinstance(built, PluginError):
            raise PluginError(str(built))
        return built

    def check_available(self, kind: str, name: str) -> None:
        """PluginError (one line) when ``name`` is not registered or its dependencies are not
        installed; imports nothing, so a process can refuse a config before it does any work."""
        entry = self._entry(kind, name)
        if isinstance(entry, LazyComponent):
            missing = entry.missing()
            if missing:
                raise entry.unavailable_error(kind, f"not installed: {', '.join(missing)}")

    def _entry(self, kind: str, name: str) -> Any:
        items = self.components(kind)
        if name not in items:
            hint = ""
            if self.failures:
                hint = "; plugins that failed to load: " + ", ".join(
                    f"{f.name} ({f.error})" for f in self.failures
                )
            raise PluginError(
                f"no {kind} named {name!r}; available: {sorted(items) or 'none'}{hint}"
            )
        return items[name]

    def trainer(self, name: str) -> Any:
        """The trainer ``name`` as the pipeline talks to it (`Trainer`): an SDK trainer
        (`ModelTrainer`) behind the core's search (`autoopt.search.SearchTrainer`, imported
        only here, when a trainer is used), a legacy trainer (its own ``tune``) as registered."""
        from autoopt.plugins.interfaces import is_sdk_trainer

        component = self.component("trainer", name)
        if not is_sdk_trainer(component):
            return component
        with self._lock:  # one adapter per trainer, so callers may compare them
            key = ("trainer-sdk", name)
            adapted = self._built.get(key)
            if adapted is None or adapted.sdk is not component:
                from autoopt.search import SearchTrainer

                adapted = self._built[key] = SearchTrainer(component)
        return adapted

    def release_trainer(self, trainer: str, model_type: str) -> Any:
        """The trainer that loads a release, from its manifest's ``trainer`` and ``model_type``
        (see `trainer_id`); PluginError naming what is available when none is registered."""
        return self.trainer(trainer_id(trainer, model_type))

    def data_source_for(self, uri: str) -> Any:
        """The data source whose scheme prefixes ``uri`` (``scheme:rest``)."""
        scheme = uri.split(":", 1)[0] if ":" in uri else "file"
        for name, source in self.components("data_source").items():
            if source.scheme == scheme:
                return self.component("data_source", name)
        schemes = sorted(s.scheme for s in self.components("data_source").values())
        raise PluginError(f"no data source for scheme {scheme!r} in {uri!r}; known schemes: {schemes}")


class _BuiltinEntryPoint:
    """A `DEFAULT_PLUGINS` entry shaped like an entry point, so built-ins and third-party
    plugins are loaded, named and reported by one code path."""

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value
        self.dist = _AUTOOPT_DIST

    def load(self) -> object:
        return importlib.import_module(self.value)


class _AutooptDist:
    name = "autoopt"

    @property
    def version(self) -> str:
        from autoopt import __version__

        return __version__


_AUTOOPT_DIST = _AutooptDist()


def _builtin_entry_points() -> Iterable[_BuiltinEntryPoint]:
    return [_BuiltinEntryPoint(name, module) for name, module in DEFAULT_PLUGINS]


def _entry_points() -> Iterable[md.EntryPoint]:
    return md.entry_points(group=ENTRY_POINT_GROUP)


def load_plugins(
    *,
    entry_points: bool = True,
    extra: Iterable[tuple[str, object]] = (),
    disabled: Iterable[str] = (),
) -> Plugins:
    """Build the plugin manager: autoopt's built-ins (`DEFAULT_PLUGINS`), then the entry points
    of the ``autoopt`` group (unless ``entry_points`` is false), then ``extra``.

    ``disabled`` names plugins to skip, built-in or not (config ``plugins.disabled``).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    plugins = Plugins(pm)
    skip = set(disabled)
    seen: set[str] = set()
    found: list[Any] = list(_builtin_entry_points())
    if entry_points:
        found.extend(_entry_points())
    for ep in found:
        if ep.name in skip or ep.name in seen:
            continue
        seen.add(ep.name)
        dist = ep.dist
        version = dist.version if dist is not None else ""
        source = f"{dist.name if dist else '?'} ({ep.value})"
        try:
            obj = ep.load()
            plugins.register(obj, ep.name, version=version, source=source)
        except Exception as exc:
            failure = PluginFailure(
                name=ep.name,
                source=source,
                error=f"{type(exc).__name__}: {exc}",
                detail=traceback.format_exc(),
            )
            plugins.failures.append(failure)
            log.error("%s", failure.as_error())
    for name, obj in extra:
        plugins.register(obj, name, source="registered in code")
    return plugins
