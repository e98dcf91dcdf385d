"""The streaming drift detectors the decision core may run, resolved once, at start.

Why here: `decide` is pure and never asks the plugin manager. Whoever starts a core (the
service's decider, ``autoopt replay``, a backtest) resolves the factories that
``policy.drift.detectors`` names once, from the plugins (`from_plugins`), checks the whole policy
against them (unknown names, bad ``[policy.drift.params.<name>]`` tables: one ConfigError line),
and passes the result to `decide`. Without one, the core runs autoopt's own ADWIN and
Page-Hinkley (`builtin`), the same factories the ``builtin-drift`` plugin registers, so a log
decided with the built-ins replays the same either way.

PSI and KS are no streaming detectors: they are the core's window tests on FeatureBatch columns
(`autoopt.core.policies.drift`) and always known.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from autoopt.config import Config, DriftPolicy, PolicyConfig
from autoopt.errors import AutooptError, ConfigError

if TYPE_CHECKING:
    from autoopt.plugins.interfaces import DriftDetectorFactory

WINDOW_DETECTORS = ("ks", "psi")
"""Detector names the core computes itself on feature windows (not factories)."""

_LEGACY_PARAMS: dict[str, Callable[[DriftPolicy], dict[str, Any]]] = {
    "adwin": lambda cfg: {"delta": cfg.adwin_delta},
    "page_hinkley": lambda cfg: {
        "min_instances": cfg.page_hinkley_min_instances,
        "delta": cfg.page_hinkley_delta,
        "threshold": cfg.page_hinkley_threshold,
        "alpha": cfg.page_hinkley_alpha,
    },
}
"""The built-ins' params from their older flat keys (``adwin_delta``, ``page_hinkley_*``), which
``[policy.drift.params.<name>]`` entries override."""


def detector_params(name: str, cfg: DriftPolicy) -> dict[str, Any]:
    """The keyword arguments ``create`` gets for detector ``name`` under ``cfg``."""
    legacy = _LEGACY_PARAMS.get(name)
    base = legacy(cfg) if legacy is not None else {}
    return {**base, **cfg.params.get(name, {})}


def drift_policies(policy: PolicyConfig) -> Iterator[tuple[str, DriftPolicy]]:
    """Every drift policy in force with its config key: the global one, then per symbol."""
    yield "policy.drift", policy.drift
    for symbol in sorted(policy.symbols):
        over = policy.symbols[symbol].drift
        if over is not None:
            yield f"policy.symbols.{symbol}.drift", over


def configured_names(policy: PolicyConfig) -> list[str]:
    """Streaming detector names the policy uses (``detectors`` and ``params`` keys), sorted."""
    names: set[str] = set()
    for _, cfg in drift_policies(policy):
        names.update(cfg.detectors)
        names.update(cfg.params)
    return sorted(names - set(WINDOW_DETECTORS))


def _unknown(key: str, name: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(
        f"config key {key!r}: unknown drift detector {name!r} (a plugin's detector needs its "
        f"plugin installed); known: {', '.join(known)}{hint}"
    )


def check_names(policy: PolicyConfig, streaming: Iterable[str]) -> None:
    """ConfigError (one line, the first bad key) when the policy names a detector that is neither
    a window test (psi, ks) nor one of ``streaming``, or gives params to one."""
    stream = set(streaming)
    known = sorted(stream | set(WINDOW_DETECTORS))
    for key, cfg in drift_policies(policy):
        for i, name in enumerate(cfg.detectors):
            if name not in known:
                raise _unknown(f"{key}.detectors[{i}]", name, known)
        for name in cfg.params:
            if name in WINDOW_DETECTORS:
                raise ConfigError(
                    f"config key '{key}.params.{name}': {name} takes no params (its settings are "
                    f"the {name}_* keys of {key})"
                )
            if name not in stream:
                raise _unknown(f"{key}.params.{name}", name, known)


class StreamDetectors:
    """Streaming detector factories by name: what the core builds and restores detectors with.

    `check` validates a policy against them once per config object (names, and params by
    building one detector with them), so a bad config fails at start, not at its first signal.
    """

    __slots__ = ("_factories", "_checked")

    def __init__(self, factories: Iterable[DriftDetectorFactory]) -> None:
        self._factories: dict[str, DriftDetectorFactory] = {}
        for f in factories:
            if f.name in WINDOW_DETECTORS:
                raise ConfigError(f"drift detector name {f.name!r} is reserved for the core's own test")
            self._factories[f.name] = f
        self._checked: dict[int, PolicyConfig] = {}

    def names(self) -> list[str]:
        """Streaming detector names, sorted."""
        return sorted(self._factories)

    def factory(self, name: str) -> DriftDetectorFactory:
        try:
            return self._factories[name]
        except KeyError:
            raise _unknown("policy.drift.detectors", name,
                           sorted(set(self._factories) | set(WINDOW_DETECTORS))) from None

    def check(self, config: Config | PolicyConfig) -> None:
        policy = config.policy if isinstance(config, Config) else config
        if self._checked.get(id(policy)) is policy:
            return
        check_names(policy, self._factories)
        for key, cfg in drift_policies(policy):
            for name in sorted(set(cfg.detectors) - set(WINDOW_DETECTORS)):
                params = detector_params(name, cfg)
                try:
                    self._factories[name].create(**params)
                except Exception as exc:  # noqa: BLE001 - a plugin's own error, made one line
                    raise ConfigError(
                        f"config key '{key}.params.{name}': drift detector {name!r} rejects "
                        f"{params}: {type(exc).__name__}: {exc}"
                    ) from None
        if len(self._checked) >= 16:
            self._checked.pop(next(iter(self._checked)))
        self._checked[id(policy)] = policy


_BUILTIN: StreamDetectors | None = None


def builtin() -> StreamDetectors:
    """autoopt's own ADWIN and Page-Hinkley (what `decide` uses when given none)."""
    global _BUILTIN
    if _BUILTIN is None:
        from autoopt.drift import BUILTIN_STREAM_FACTORIES

        _BUILTIN = StreamDetectors(BUILTIN_STREAM_FACTORIES)
    return _BUILTIN


def from_plugins(plugins: Any, config: Config | PolicyConfig) -> StreamDetectors:
    """Resolve the detectors ``config`` names from a loaded plugin set (`autoopt.plugins.Plugins`)
    and check the config against them: ConfigError (one line) naming an unknown or unusable one.
    Called once at start, never from `decide`."""
    policy = config.policy if isinstance(config, Config) else config
    registered = plugins.components("drift_detector")
    check_names(policy, [n for n in registered if n not in WINDOW_DETECTORS])
    factories = []
    for name in configured_names(policy):
        try:
            factories.append(plugins.component("drift_detector", name))
        except AutooptError as exc:
            raise ConfigError(f"drift detector {name!r}: {exc}") from None
    detectors = StreamDetectors(factories)
    detectors.check(policy)
    return detectors


__all__ = [
    "WINDOW_DETECTORS",
    "StreamDetectors",
    "builtin",
    "check_names",
    "configured_names",
    "detector_params",
    "drift_policies",
    "from_plugins",
]
