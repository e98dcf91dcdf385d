"""The steps after a passing verdict, each idempotent and resumed after a kill at any point.

Order (the `autoopt.faults` step after each): the artifact is staged (hidden) before the
verdict names it; then ``ValidationVerdict`` (after_verdict), the staged dir renamed into
place (after_artifact), ``ModelReleased`` and the training reference (after_released),
``current`` switched (after_current), ``ModelPromoted`` (after_promoted).

Canary mode (``release.mode = "canary"``, `ReleaseSteps.canary` set) with a champion to beat:
instead of the last two steps, an experiment champion vs challenger is created and started
(``auto_decide``: the service's supervisor concludes it and its promotion goes through
`autoopt.promotion.promote`, the one promotion path) and `CanaryStarted` records it; a
symbol's earlier canary still running is concluded without a winner (superseded). A first
release (no champion) is promoted directly: there is nothing to compare it with.

Why this shape: a verdict is a promise to release. Every later event's id is derived from the
verdict's id, so any rerun (a redelivered service job with the same run id, or a restarted
``autoopt retrain`` with a new one) derives the same ids; each step checks the log and the
registry first and does only what is missing, so each event is stored once and nothing is
retrained. The release to finish is found in the log (`ReleaseHistory.pending`): the last
passing verdict of the symbol that no promotion or rollback followed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autoopt import faults
from autoopt.clock import Clock
from autoopt.errors import ArtifactError
from autoopt.events import (
    CanaryStarted,
    ErrorRaised,
    Event,
    FeatureBatch,
    ModelPromoted,
    ModelReleased,
    ModelRolledBack,
    ValidationVerdict,
)
from autoopt.ids import derived_event_id
from autoopt.promotion import promote
from autoopt.registry import Manifest, ModelRegistry, Recorded, manifest_bytes, sha256_bytes
from autoopt.subjects import subject_filter

if TYPE_CHECKING:
    from autoopt.config import CanaryConfig
    from autoopt.log import EventLog


@dataclass
class ReleaseHistory:
    """A symbol's model events, read once: which ids are stored and which release is pending."""

    ids: set[str] = field(default_factory=set)
    verdicts: dict[str, ValidationVerdict] = field(default_factory=dict)
    """By event id."""
    released: dict[str, Recorded] = field(default_factory=dict)
    """What each release's ``ModelReleased`` recorded, by release id."""
    pending: ValidationVerdict | None = None
    """The last passing verdict not yet promoted, unless a later verdict, promotion or rollback
    of the symbol superseded it (then completing it would replace a newer decision)."""

    def observe(self, event: Event) -> None:
        self.ids.add(event.event_id)
        if isinstance(event, ValidationVerdict):
            self.verdicts[event.event_id] = event
            self.pending = event if event.passed else None
        elif isinstance(event, ModelReleased):
            self.released[event.release_id] = recorded_of(event)
        elif isinstance(event, ModelPromoted | ModelRolledBack | CanaryStarted):
            self.pending = None


async def read_history(event_log: EventLog, symbol: str) -> ReleaseHistory:
    history = ReleaseHistory()
    async for event in event_log.replay(subject_filter("model", scope=symbol)):
        history.observe(event)
    return history


def step_id(verdict: ValidationVerdict, step: str) -> str:
    """The id of a release step's event: derived from its verdict, the same in every rerun."""
    return derived_event_id(verdict.event_id, step)


def recorded_of(event: ModelReleased) -> Recorded:
    """What a ``ModelReleased`` makes the authority for its release's files."""
    return Recorded(sha256=event.sha256, manifest_sha256=event.manifest_sha256)


@dataclass(frozen=True)
class ReleaseSteps:
    """Completes the release a passing verdict names; see the module docstring."""

    event_log: EventLog
    registry: ModelRegistry
    clock: Clock
    run_id: str
    canary: CanaryConfig | None = None
    """Set (``release.mode = "canary"``): a challenger with a champion to beat goes live as a
    canary experiment instead of being promoted."""

    def _event(self, cls: type[Event], verdict: ValidationVerdict, step: str,
               **fields: Any) -> Event:
        now = self.clock.now_ns()
        return cls(event_id=step_id(verdict, step), ts_event=now, ts_init=now,
                   causation_id=verdict.event_id, correlation_id=verdict.correlation_id,
                   **fields)

    async def _append_once(self, history: ReleaseHistory, event: Event) -> None:
        if event.event_id not in history.ids:
            await self.event_log.append(event)
            history.ids.add(event.event_id)

    async def complete(
        self,
        verdict: ValidationVerdict,
        history: ReleaseHistory,
        reference: Callable[[Manifest], Mapping[str, Any]] | None,
    ) -> Manifest:
        """Do the missing steps after ``verdict`` (which must have passed); returns the
        manifest. ``reference`` builds the fields of the release's training-reference
        `FeatureBatch` from its manifest (None: not recorded)."""
        symbol, rid = verdict.symbol, verdict.challenger
        if not verdict.passed:
            raise ArtifactError(f"{symbol}: verdict {verdict.event_id} refused {rid}: no release")
        manifest = self.registry.publish(symbol, rid)
        faults.reached("after_artifact")

        raw = manifest_bytes(manifest)
        released = self._event(
            ModelReleased, verdict, "model.released", symbol=symbol, release_id=rid,
            model_type=manifest.model_type, sha256=manifest.sha256,
            uri=self.registry.uri(symbol, rid),
            metrics={k: v for k, v in manifest.metrics.items()
                     if v is not None and math.isfinite(v)},
            features=list(manifest.features), params=dict(manifest.params),
            parent=manifest.parent_release, run_id=self.run_id,
            manifest_sha256=sha256_bytes(raw), trainer=manifest.trainer,
        )
        await self._append_once(history, released)
        if reference is not None:
            await self._append_once(history, self._event(
                FeatureBatch, verdict, "model.reference", release_id=rid, **reference(manifest)))
        faults.reached("after_released")

        if self.canary is not None and verdict.champion is not None:
            await self._start_canary(verdict, history, self.canary)
            history.pending = None
            return manifest

        promoted = self._event(
            ModelPromoted, verdict, "model.promoted", symbol=symbol, release_id=rid,
            previous_release_id=verdict.champion,
            reason="passed the release gate: " + "; ".join(verdict.reasons),
        )
        await promote(self.event_log, self.registry, promoted,  # type: ignore[arg-type]
                      recorded=recorded_of(released), stored_ids=history.ids,  # type: ignore[arg-type]
                      after_switch=lambda: faults.reached("after_current"))
        history.ids.add(promoted.event_id)
        faults.reached("after_promoted")
        history.pending = None
        return manifest

    async def _start_canary(self, verdict: ValidationVerdict, history: ReleaseHistory,
                            canary: CanaryConfig) -> None:
        """Create and start the canary experiment (once; resumed after a kill), then record
        `CanaryStarted`."""
        from autoopt.ab.experiments import (
            ExperimentBook,
            ExperimentService,
            ExperimentSpec,
            Guardrails,
        )
        from autoopt.errors import ConfigError
        from autoopt.events import VariantSpec

        symbol, rid, champion = verdict.symbol, verdict.challenger, verdict.champion
        assert champion is not None
        name = canary_name(symbol, rid)
        book = await ExperimentBook.rebuild(self.event_log)
        svc = ExperimentService(self.event_log, book, clock=self.clock)
        for exp in book.running():
            if exp.symbol == symbol and exp.name != name:
                await svc.conclude(exp.name, None, f"superseded by canary {name}")
        if name not in book.experiments:
            w = canary.challenger_weight
            await svc.create(ExperimentSpec(
                name=name, symbol=symbol, seed=name, champion="champion",
                variants=[VariantSpec(name="champion", release_id=champion, weight=1.0 - w),
                          VariantSpec(name="challenger", release_id=rid, weight=w)],
                hypothesis=f"challenger {rid} earns more than champion {champion} live, "
                           "after costs",
                unit=canary.unit, min_samples=canary.min_samples, alpha=canary.alpha,
                max_duration_s=canary.max_duration_s, shadow=canary.shadow, auto_decide=True,
                guardrails=Guardrails.from_dict(canary.guardrails),
            ))
        if book.get(name).status == "draft":
            try:
                await svc.start(name, reason=f"canary of verdict {verdict.event_id}")
            except ConfigError as exc:  # another experiment covers the symbol (e.g. "*")
                await self._append_once(history, self._event(
                    ErrorRaised, verdict, "model.canary.error", component="canary",
                    error_type="ConfigError", message=f"canary {name} not started: {exc}",
                    details={"symbol": symbol, "release_id": rid, "experiment": name}))
        await self._append_once(history, self._event(
            CanaryStarted, verdict, "model.canary", symbol=symbol, release_id=rid,
            experiment=name, champion_release_id=champion, shadow=canary.shadow))


def canary_name(symbol: str, release_id: str) -> str:
    """The experiment a canary release runs in: ``canary/<symbol>/<release id>``."""
    return re.sub(r"[^A-Za-z0-9_\-:+=@~/]", "_", f"canary/{symbol}/{release_id}")[:128]


__all__ = [
    "ReleaseHistory", "ReleaseSteps", "canary_name", "read_history", "recorded_of", "step_id",
]
