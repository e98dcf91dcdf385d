"""Experiments as events: definition, lifecycle, assignment, and the projection rebuilt from them.

Why: the event log is the source of truth, so an experiment is nothing but its events
(`ExperimentCreated`, `ExperimentStarted`, `ExperimentPaused`, `ExperimentConcluded`,
`VariantAssigned`); `ExperimentBook` folds them into current state, and replaying the
``EXPERIMENTS`` stream rebuilds it exactly after a restart or in another process.

Lifecycle: ``draft`` (created) → ``running`` (started) ⇄ ``paused`` → ``concluded`` (final; with
the winner or none). Only a running experiment receives traffic.

Assignment: ``autoopt.hashing.assign(seed, unit_key, weights, coverage)`` (GrowthBook v2 hash):
a pure function of the experiment's seed and the unit key, so every process and every restart
agrees and a unit never switches variant. Units outside ``coverage`` are not in the experiment
(they pass through unchanged, unrecorded). The router records a ``symbol`` / ``account``
unit's first assignment as `VariantAssigned` (id derived from experiment and unit, so it is
stored once); for ``signal_id`` units the `SignalRouted` of each signal is its assignment
record. Either gives the SRM check its counts and lets outcomes join to variants.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable
from typing import Any, Literal

import msgspec

from autoopt import hashing
from autoopt.clock import Clock
from autoopt.errors import ConfigError
from autoopt.events import (
    Event,
    ExperimentConcluded,
    ExperimentCreated,
    ExperimentPaused,
    ExperimentStarted,
    VariantAssigned,
    VariantSpec,
)
from autoopt.ids import derived_event_id
from autoopt.log import EventLog

Unit = Literal["signal_id", "symbol", "account"]
Status = Literal["draft", "running", "paused", "concluded"]
UNITS: tuple[str, ...] = ("signal_id", "symbol", "account")
ALL_SYMBOLS = "*"
STREAM = "EXPERIMENTS"

# Variant config keys the router itself understands; plugins may declare more.
BUILTIN_CONFIG_KEYS: dict[str, str] = {
    "confidence_threshold": "signals below it become 'flat' (0..1)",
    "size_multiplier": "scales the position size (> 0)",
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-:+=@~/]{0,127}$")


class Guardrails(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Limits that roll a challenger back whatever the test says. ``max_drawdown`` is in
    cumulative per-trade return (0.1 = 10 points below the peak); ``max_error_rate`` counts
    errors per routed signal once ``min_routed`` signals were routed. None disables a limit."""

    max_drawdown: float | None = None
    max_loss_streak: int | None = None
    max_error_rate: float | None = None
    min_routed: int = 20

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in msgspec.structs.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, raw: dict[str, float]) -> Guardrails:
        try:
            g = msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(
                f"guardrails: {exc} (known: {sorted(cls.__struct_fields__)})"
            ) from exc
        for name in ("max_drawdown", "max_error_rate"):
            v = getattr(g, name)
            if v is not None and not (v > 0 and math.isfinite(v)):
                raise ConfigError(f"guardrails.{name} must be > 0, got {v}")
        if g.max_loss_streak is not None and g.max_loss_streak < 1:
            raise ConfigError(f"guardrails.max_loss_streak must be >= 1, got {g.max_loss_streak}")
        return g


class ExperimentSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What `ExperimentService.create` records. ``seed`` defaults to the name; ``champion`` to
    the first variant; ``symbol`` may be ``"*"`` (every symbol)."""

    name: str
    symbol: str
    variants: list[VariantSpec]
    hypothesis: str = ""
    unit: str = "signal_id"
    coverage: float = 1.0
    metric: str = "return"
    guardrails: Guardrails = Guardrails()
    min_samples: int = 30
    max_duration_s: float = 0.0
    alpha: float = 0.05
    champion: str = ""
    shadow: bool = False
    auto_decide: bool = False
    sequential_tuning: float = 5000.0
    seed: str = ""

    def validate(self, declared_keys: Collection[str] = ()) -> None:
        """Raise ConfigError naming the first thing wrong. ``declared_keys``: variant config keys
        plugins declared, besides `BUILTIN_CONFIG_KEYS`."""
        where = f"experiment {self.name!r}"
        if not _NAME.match(self.name):
            raise ConfigError(
                f"experiment name {self.name!r} must be 1-128 letters, digits or '_-:+=@~/', "
                "starting with a letter or digit"
            )
        if not self.symbol:
            raise ConfigError(f"{where}: symbol is empty (use '*' for every symbol)")
        if self.unit not in UNITS:
            raise ConfigError(f"{where}: unit {self.unit!r} is not one of {list(UNITS)}")
        if self.metric != "return":
            raise ConfigError(f"{where}: primary metric {self.metric!r} unsupported (use 'return')")
        if len(self.variants) < 2:
            raise ConfigError(f"{where}: needs at least 2 variants, got {len(self.variants)}")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: variant names repeat: {names}")
        known = set(BUILTIN_CONFIG_KEYS) | set(declared_keys)
        for v in self.variants:
            if not _NAME.match(v.name):
                raise ConfigError(f"{where}: variant name {v.name!r} is not a valid name")
            if not (v.weight > 0 and math.isfinite(v.weight)):
                raise ConfigError(f"{where}: variant {v.name!r} weight must be > 0, got {v.weight}")
            if not v.release_id:
                raise ConfigError(f"{where}: variant {v.name!r} has no release_id")
            unknown = sorted(set(v.config) - known)
            if unknown:
                raise ConfigError(
                    f"{where}: variant {v.name!r} config keys {unknown} are not understood by the "
                    f"router nor declared by a plugin (known: {sorted(known)})"
                )
            thr = v.config.get("confidence_threshold")
            if thr is not None and not (isinstance(thr, int | float) and 0.0 <= thr <= 1.0):
                raise ConfigError(
                    f"{where}: variant {v.name!r} confidence_threshold must be in [0, 1], got {thr!r}"
                )
            mult = v.config.get("size_multiplier")
            if mult is not None and not (isinstance(mult, int | float) and mult > 0):
                raise ConfigError(
                    f"{where}: variant {v.name!r} size_multiplier must be > 0, got {mult!r}"
                )
        total = sum(v.weight for v in self.variants)
        if not 0.99 <= total <= 1.01:
            raise ConfigError(f"{where}: variant weights sum to {total:.4f}, must sum to 1")
        if self.champion and self.champion not in names:
            raise ConfigError(f"{where}: champion {self.champion!r} is not a variant of {names}")
        if not 0.0 < self.coverage <= 1.0:
            raise ConfigError(f"{where}: coverage must be in (0, 1], got {self.coverage}")
        if not 0.0 < self.alpha < 0.5:
            raise ConfigError(f"{where}: alpha must be in (0, 0.5), got {self.alpha}")
        if self.min_samples < 2:
            raise ConfigError(f"{where}: min_samples must be >= 2, got {self.min_samples}")
        if self.max_duration_s < 0:
            raise ConfigError(f"{where}: max_duration_s must be >= 0, got {self.max_duration_s}")
        if self.sequential_tuning <= 0:
            raise ConfigError(f"{where}: sequential_tuning must be > 0")

    def to_event(self, clock: Clock | None = None) -> ExperimentCreated:
        return ExperimentCreated.new(
            clock=clock,
            event_id=derived_event_id(f"experiment/{self.name}", "created"),
            experiment=self.name,
            symbol=self.symbol,
            variants=list(self.variants),
            seed=self.seed or self.name,
            metric=self.metric,
            hypothesis=self.hypothesis,
            min_samples=self.min_samples,
            alpha=self.alpha,
            unit=self.unit,
            coverage=self.coverage,
            guardrails=self.guardrails.to_dict(),
            max_duration_s=self.max_duration_s,
            champion=self.champion or self.variants[0].name,
            shadow=self.shadow,
            auto_decide=self.auto_decide,
            sequential_tuning=self.sequential_tuning,
        )


class Assignment(msgspec.Struct, frozen=True):
    """Where a unit goes: its variant and hash bucket in [0, 1)."""

    experiment: str
    unit_key: str
    variant: VariantSpec
    bucket: float


class Experiment:
    """Current state of one experiment, folded from its events (see `ExperimentBook`)."""

    __slots__ = (
        "name", "symbol", "hypothesis", "unit", "variants", "seed", "coverage", "metric",
        "guardrails", "min_samples", "max_duration_s", "alpha", "champion", "shadow",
        "auto_decide", "tuning", "status", "created_ns", "started_ns", "run_ns", "running_since",
        "concluded_ns", "winner", "reason", "statistics", "assigned", "_weights", "_by_name",
    )  # fmt: skip

    def __init__(self, ev: ExperimentCreated) -> None:
        self.name = ev.experiment
        self.symbol = ev.symbol
        self.hypothesis = ev.hypothesis
        self.unit = ev.unit
        self.variants = list(ev.variants)
        self.seed = ev.seed
        self.coverage = ev.coverage
        self.metric = ev.metric
        self.guardrails = Guardrails.from_dict(dict(ev.guardrails))
        self.min_samples = ev.min_samples
        self.max_duration_s = ev.max_duration_s
        self.alpha = ev.alpha
        self.champion = ev.champion or ev.variants[0].name
        self.shadow = ev.shadow
        self.auto_decide = ev.auto_decide
        self.tuning = ev.sequential_tuning
        self.status: Status = "draft"
        self.created_ns = ev.ts_event
        self.started_ns = 0  # first start
        self.run_ns = 0  # time spent running before the current run
        self.running_since = 0
        self.concluded_ns = 0
        self.winner: str | None = None
        self.reason = ""
        self.statistics: dict[str, Any] = {}
        self.assigned: dict[str, str] = {}  # unit key -> variant, from VariantAssigned
        self._weights = [v.weight for v in self.variants]
        self._by_name = {v.name: v for v in self.variants}

    # ------------------------------------------------------------------ queries

    def variant(self, name: str) -> VariantSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigError(
                f"experiment {self.name!r} has no variant {name!r}; variants: {list(self._by_name)}"
            ) from None

    @property
    def champion_spec(self) -> VariantSpec:
        return self._by_name[self.champion]

    @property
    def challengers(self) -> list[VariantSpec]:
        return [v for v in self.variants if v.name != self.champion]

    @property
    def weights(self) -> dict[str, float]:
        return {v.name: v.weight for v in self.variants}

    def covers(self, symbol: str) -> bool:
        return self.symbol == ALL_SYMBOLS or self.symbol == symbol

    def running_s(self, now_ns: int) -> float:
        """Seconds spent running (pauses excluded)."""
        extra = now_ns - self.running_since if self.status == "running" else 0
        return (self.run_ns + max(0, extra)) / 1e9

    def expired(self, now_ns: int) -> bool:
        return self.max_duration_s > 0 and self.running_s(now_ns) >= self.max_duration_s

    def variant_index(self, unit_key: str) -> int | None:
        """Index of the unit's variant (pure function of seed and key); None outside coverage."""
        idx = hashing.assign(self.seed, unit_key, self._weights, self.coverage)
        return None if idx is None or idx < 0 else idx

    def assignment(self, unit_key: str, idx: int) -> Assignment:
        return Assignment(
            self.name, unit_key, self.variants[idx], hashing.bucket(self.seed, unit_key)
        )

    def assign(self, unit_key: str) -> Assignment | None:
        """The unit's variant and bucket, or None outside coverage."""
        idx = self.variant_index(unit_key)
        return None if idx is None else self.assignment(unit_key, idx)

    def summary(self) -> dict[str, Any]:
        """Plain data for listings and JSON output."""
        return {
            "name": self.name,
            "symbol": self.symbol,
            "status": self.status,
            "unit": self.unit,
            "champion": self.champion,
            "variants": [msgspec.to_builtins(v) for v in self.variants],
            "coverage": self.coverage,
            "shadow": self.shadow,
            "auto_decide": self.auto_decide,
            "min_samples": self.min_samples,
            "max_duration_s": self.max_duration_s,
            "alpha": self.alpha,
            "guardrails": self.guardrails.to_dict(),
            "hypothesis": self.hypothesis,
            "assigned_units": len(self.assigned),
            "winner": self.winner,
            "reason": self.reason,
        }


_LIFECYCLE = (ExperimentCreated, ExperimentStarted, ExperimentPaused, ExperimentConcluded)


def _transition(exp: Experiment, action: str, allowed: tuple[str, ...]) -> None:
    if exp.status not in allowed:
        raise ConfigError(
            f"experiment {exp.name!r} is {exp.status}; it cannot be {action} "
            f"(only from {', '.join(allowed)})"
        )


class ExperimentBook:
    """The projection: every experiment's state, from its events in log order.

    `apply` is strict (an event the lifecycle forbids raises ConfigError) when ``strict``; a
    replay of a log written through `ExperimentService` never trips it.
    """

    def __init__(self) -> None:
        self.experiments: dict[str, Experiment] = {}
        # bumped on lifecycle changes (not assignments): the router's routing caches follow it
        self.lifecycle_version = 0
        self._seen: set[str] = (
            set()
        )  # lifecycle event ids: a live echo of a replayed event is a no-op

    def get(self, name: str) -> Experiment:
        try:
            return self.experiments[name]
        except KeyError:
            raise ConfigError(
                f"no experiment named {name!r}; known: {sorted(self.experiments)}"
            ) from None

    def running(self) -> list[Experiment]:
        return [e for e in self.experiments.values() if e.status == "running"]

    def running_for(self, symbol: str) -> Experiment | None:
        for e in self.experiments.values():
            if e.status == "running" and e.covers(symbol):
                return e
        return None

    def apply(self, ev: Event) -> bool:
        """Fold one event in (again: no-op); returns False for events this projection ignores."""
        lifecycle = isinstance(ev, _LIFECYCLE)
        if lifecycle and ev.event_id in self._seen:
            return True
        if isinstance(ev, ExperimentCreated):
            if ev.experiment in self.experiments:
                raise ConfigError(f"experiment {ev.experiment!r} is already defined")
            self.experiments[ev.experiment] = Experiment(ev)
        elif isinstance(ev, ExperimentStarted):
            exp = self.get(ev.experiment)
            _transition(exp, "started", ("draft", "paused"))
            self._check_overlap(exp)
            exp.status = "running"
            exp.running_since = ev.ts_event
            exp.started_ns = exp.started_ns or ev.ts_event
        elif isinstance(ev, ExperimentPaused):
            exp = self.get(ev.experiment)
            _transition(exp, "paused", ("running",))
            exp.run_ns += max(0, ev.ts_event - exp.running_since)
            exp.status = "paused"
        elif isinstance(ev, ExperimentConcluded):
            exp = self.get(ev.experiment)
            _transition(exp, "concluded", ("draft", "running", "paused"))
            if exp.status == "running":
                exp.run_ns += max(0, ev.ts_event - exp.running_since)
            if ev.winner is not None:
                exp.variant(ev.winner)
            exp.status = "concluded"
            exp.concluded_ns = ev.ts_event
            exp.winner = ev.winner
            exp.reason = ev.reason
            exp.statistics = dict(ev.statistics)
        elif isinstance(ev, VariantAssigned):
            exp = self.get(ev.experiment)
            exp.variant(ev.variant)
            exp.assigned.setdefault(ev.unit_key, ev.variant)
        else:
            return False
        if lifecycle:
            self._seen.add(ev.event_id)
            self.lifecycle_version += 1
        return True

    def _check_overlap(self, exp: Experiment) -> None:
        for other in self.running():
            if other.name != exp.name and (
                other.symbol == ALL_SYMBOLS
                or exp.symbol == ALL_SYMBOLS
                or other.symbol == exp.symbol
            ):
                raise ConfigError(
                    f"experiment {exp.name!r} ({exp.symbol}) cannot start: {other.name!r} "
                    f"({other.symbol}) is running on the same symbols; a signal goes to one experiment"
                )

    def apply_all(self, events: Iterable[Event]) -> None:
        for ev in events:
            self.apply(ev)

    @classmethod
    async def rebuild(cls, log: EventLog) -> ExperimentBook:
        """Replay the EXPERIMENTS stream into a fresh book."""
        book = cls()
        async for chunk in log.replay_batches(STREAM):
            for rec in chunk:
                book.apply(rec.event)
        return book


class ExperimentService:
    """Writes lifecycle events after checking them against the projection it keeps current."""

    def __init__(
        self,
        log: EventLog,
        book: ExperimentBook,
        *,
        clock: Clock | None = None,
        declared_keys: Collection[str] = (),
    ) -> None:
        self.log = log
        self.book = book
        self.clock = clock
        self.declared_keys = tuple(declared_keys)

    @classmethod
    async def open(
        cls, log: EventLog, *, clock: Clock | None = None, declared_keys: Collection[str] = ()
    ) -> ExperimentService:
        return cls(log, await ExperimentBook.rebuild(log), clock=clock, declared_keys=declared_keys)

    async def create(self, spec: ExperimentSpec) -> ExperimentCreated:
        """Record a new experiment (status draft). Names are unique in the log."""
        spec.validate(self.declared_keys)
        if spec.name in self.book.experiments:
            raise ConfigError(f"experiment {spec.name!r} already exists")
        ev = spec.to_event(self.clock)
        await self.log.append_expecting(ev, 0)
        self.book.apply(ev)
        return ev

    async def start(self, name: str, reason: str = "") -> ExperimentStarted:
        exp = self.book.get(name)
        _transition(exp, "started", ("draft", "paused"))
        self.book._check_overlap(exp)
        ev = ExperimentStarted.new(clock=self.clock, experiment=name, reason=reason)
        await self.log.append(ev)
        self.book.apply(ev)
        return ev

    async def pause(self, name: str, reason: str = "") -> ExperimentPaused:
        _transition(self.book.get(name), "paused", ("running",))
        ev = ExperimentPaused.new(clock=self.clock, experiment=name, reason=reason)
        await self.log.append(ev)
        self.book.apply(ev)
        return ev

    async def conclude(
        self,
        name: str,
        winner: str | None,
        reason: str,
        statistics: dict[str, Any] | None = None,
        *,
        cause: Event | None = None,
    ) -> ExperimentConcluded:
        """End the experiment (once: a second conclusion loses the expected-sequence race)."""
        exp = self.book.get(name)
        _transition(exp, "concluded", ("draft", "running", "paused"))
        if winner is not None:
            exp.variant(winner)
        ev = ExperimentConcluded.new(
            clock=self.clock,
            cause=cause,
            experiment=name,
            winner=winner,
            reason=reason,
            statistics=statistics or {},
        )
        await self.log.append_expecting(ev, 0)
        self.book.apply(ev)
        return ev


def assignment_event(a: Assignment, *, clock: Clock | None = None) -> VariantAssigned:
    """The record of a unit's assignment; its id is derived from (experiment, unit) so the log
    keeps one per unit however often it is written."""
    return VariantAssigned.new(
        clock=clock,
        event_id=derived_event_id(f"experiment/{a.experiment}", f"assign/{a.unit_key}"),
        experiment=a.experiment,
        unit_key=a.unit_key,
        variant=a.variant.name,
        bucket=a.bucket,
    )


__all__ = [
    "ALL_SYMBOLS",
    "BUILTIN_CONFIG_KEYS",
    "UNITS",
    "Assignment",
    "Experiment",
    "ExperimentBook",
    "ExperimentService",
    "ExperimentSpec",
    "Guardrails",
    "assignment_event",
]
