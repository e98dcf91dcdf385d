"""Per-event decision context and the per-symbol effective policy.

Why: every policy needs the same few things (the event, the core's clock, the symbol's state and
effective policy, a way to emit an output with a deterministic id); keeping them in one small
object keeps the policies short and the id scheme in one place.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from autoopt.clock import NS_PER_S
from autoopt.config import Config, DegradationPolicy, DriftPolicy, PolicyConfig, schedule_off
from autoopt.core.commands import Command, CommandBase
from autoopt.core.detectors import StreamDetectors
from autoopt.core.state import State, StateData, SymbolState
from autoopt.errors import ConfigError
from autoopt.events import Event
from autoopt.ids import derived_event_id


class Effective(NamedTuple):
    """The policy that applies to one symbol: global values with its overrides applied."""

    schedule: str | None
    cooldown_ns: int
    degradation: DegradationPolicy
    drift: DriftPolicy


class Resolved(NamedTuple):
    policy: PolicyConfig
    symbols: tuple[str, ...]  # symbols registered from the start (config + overrides)
    per_symbol: dict[str, Effective]
    default: Effective
    sched_key: str  # identifies the cron expressions in force (default + overrides)


_CACHE: dict[int, tuple[object, Resolved]] = {}
_CACHE_MAX = 16


def _seconds_to_ns(seconds: float) -> int:
    return int(round(seconds * NS_PER_S))


def resolve(config: Config | PolicyConfig) -> Resolved:
    """Resolve per-symbol policies once per config object (configs are treated as immutable)."""
    hit = _CACHE.get(id(config))
    if hit is not None and hit[0] is config:
        return hit[1]
    if isinstance(config, Config):
        policy, listed = config.policy, list(config.symbols)
    elif isinstance(config, PolicyConfig):
        policy, listed = config, []
    else:
        raise ConfigError(
            f"decide: config must be autoopt.config.Config or PolicyConfig, got {type(config).__name__}"
        )
    default = Effective(
        policy.schedule, _seconds_to_ns(policy.cooldown_s), policy.degradation, policy.drift
    )
    per_symbol: dict[str, Effective] = {}
    for name, over in policy.symbols.items():
        schedule = over.schedule if over.schedule is not None else default.schedule
        per_symbol[name] = Effective(
            None if schedule_off(schedule) else schedule,
            _seconds_to_ns(over.cooldown_s) if over.cooldown_s is not None else default.cooldown_ns,
            over.degradation if over.degradation is not None else default.degradation,
            over.drift if over.drift is not None else default.drift,
        )
    symbols = tuple(sorted(set(listed) | set(policy.symbols)))
    sched_key = json.dumps(
        [default.schedule, sorted((k, v.schedule) for k, v in per_symbol.items())]
    )
    resolved = Resolved(policy, symbols, per_symbol, default, sched_key)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[id(config)] = (config, resolved)
    return resolved


class Ctx:
    """Everything one `decide` call works with; outputs collect in ``out``. ``detectors``: the
    streaming drift detector factories resolved at start (`autoopt.core.detectors`)."""

    __slots__ = ("state", "data", "event", "now", "prev_clock", "resolved", "detectors", "out")

    def __init__(
        self,
        state: State,
        event: Event,
        now: int,
        prev_clock: int,
        resolved: Resolved,
        detectors: StreamDetectors,
    ):
        self.state = state
        self.data: StateData = state.data
        self.event = event
        self.now = now
        self.prev_clock = prev_clock
        self.resolved = resolved
        self.detectors = detectors
        self.out: list[Command] = []

    @property
    def policy(self) -> PolicyConfig:
        return self.resolved.policy

    def eff(self, symbol: str) -> Effective:
        return self.resolved.per_symbol.get(symbol, self.resolved.default)

    def sym(self, symbol: str) -> SymbolState:
        """The symbol's state, registering it (now) on first sight."""
        s = self.data.symbols.get(symbol)
        if s is None:
            s = SymbolState(symbol=symbol, registered_ns=self.now)
            self.data.symbols[symbol] = s
            self.data.sched_key = ""  # a new schedule to set up: full pass this event
        return s

    def emit(
        self,
        cls: type[CommandBase],
        symbol: str,
        reason: str,
        trigger: str,
        details: dict[str, Any],
    ) -> Command:
        cmd = cls(
            id=derived_event_id(self.event.event_id, f"core.{len(self.out)}"),
            symbol=symbol,
            reason=reason,
            trigger=trigger,
            details=details,
            event_id=self.event.event_id,
            ts=self.now,
        )
        self.out.append(cmd)  # type: ignore[arg-type]
        return cmd  # type: ignore[return-value]

    # ------------------------------------------------------------------ in-flight bookkeeping
    def refresh_in_flight(self, sym: SymbolState) -> None:
        lst = self.data.in_flight
        if sym.in_flight:
            if sym.symbol not in lst:
                lst.append(sym.symbol)
                lst.sort()
        elif sym.symbol in lst:
            lst.remove(sym.symbol)


__all__ = ["Ctx", "Effective", "Resolved", "resolve"]
