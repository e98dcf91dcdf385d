"""``autoopt retrain --via-service``: ask the running service for a retrain and follow it to its
verdict, instead of training in this process.

Why: the service owns the schedule, the guards (cooldown, concurrency) and the workers; a retrain
an operator starts beside it would race it. The request is a `RetrainRequested` (any reason is
honoured and recorded, `autoopt.core.policies.manual`); what follows is read from the log, by
ids derived from the request, so this command shows exactly the chain the service ran:

    RetrainRequested → DecisionMade (retrain, or suppressed: held by a guard and queued)
    → TrainingStarted / TrialCompleted (progress) → TrainingFinished → ValidationVerdict
    → ModelPromoted (direct) or CanaryStarted (canary) for a passing verdict

`Follower` is the pure part (an event in, what it means for the request out); `follow` does the
I/O: it subscribes before appending the request, so nothing is missed.

No service running: a live service's decider answers a request (a decision, or "held" by a
guard) as soon as it reads it, so no answer within ``service_wait_s`` (30 s by default,
``--service-wait``) means nothing consumes the log: one line says so instead of waiting the
whole ``--timeout``. Once a decision is in, a retrain may take as long as ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from autoopt.errors import AutooptError, DataError
from autoopt.events import (
    CanaryStarted,
    DecisionMade,
    ErrorRaised,
    Event,
    JobProgress,
    ModelPromoted,
    RetrainRequested,
    TrainingFinished,
    TrainingStarted,
    TrialCompleted,
    ValidationVerdict,
    decode,
)
from autoopt.ids import derived_event_id
from autoopt.subjects import subject_filter


@dataclass
class Outcome:
    """How one model's retrain ended."""

    model: str
    passed: bool | None = None
    release_id: str | None = None
    how: str = ""
    """``"promoted"``, ``"canary"``, ``"refused"`` or ``"failed"``."""
    reasons: list[str] = field(default_factory=list)


@dataclass
class Follower:
    """Folds the log's events into the state of one request (see the module doc)."""

    request: RetrainRequested
    models: list[str]
    decision: DecisionMade | None = None
    run_id: str | None = None
    verdicts: dict[str, ValidationVerdict] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    trials: int = 0
    answered: bool = False
    """A service decided on the request (a retrain, or held by a guard): one is running."""

    @property
    def done(self) -> bool:
        return all(m in self.outcomes for m in self.models)

    def _mine(self, d: DecisionMade) -> bool:
        rid = self.request.event_id
        return d.details.get("request_id") == rid or rid in (d.details.get("satisfies") or [])

    def see(self, ev: Event) -> str | None:
        """A progress line when ``ev`` advances the request, else None."""
        sym = self.request.symbol
        if isinstance(ev, DecisionMade) and ev.symbol == sym and self._mine(ev):
            self.answered = True
            if ev.kind != "retrain":
                return f"held: {ev.reason} (the service keeps the request queued)"
            if self.decision is None:
                self.decision = ev
                self.run_id = derived_event_id(ev.event_id, "retrain")
                return f"decided: retrain {sym} (decision {ev.event_id})"
            return None
        if self.run_id is None:
            return None
        if isinstance(ev, TrainingStarted) and ev.run_id == self.run_id:
            return f"training {ev.trainer}: started, {ev.n_trials} trials"
        if isinstance(ev, TrialCompleted) and ev.run_id == self.run_id:
            self.trials += 1
            return f"trial {ev.number} {ev.state.lower()}"
        if isinstance(ev, TrainingFinished) and ev.run_id == self.run_id:
            if not ev.succeeded:
                self.outcomes[ev.trainer] = Outcome(ev.trainer, None, None, "failed",
                                                    [ev.error or "failed"])
                return f"training {ev.trainer}: failed: {ev.error}"
            return f"training {ev.trainer}: finished in {ev.duration_s:.1f}s"
        if isinstance(ev, ValidationVerdict):
            for model in self.models:
                if ev.event_id == derived_event_id(self.run_id, f"{sym}/{model}/model.verdict"):
                    self.verdicts[model] = ev
                    if not ev.passed:
                        self.outcomes[model] = Outcome(model, False, None, "refused",
                                                       list(ev.reasons))
                    return (f"verdict {model}: {'passed' if ev.passed else 'refused'}"
                            + ("" if ev.passed else ": " + "; ".join(ev.reasons[:3])))
        if isinstance(ev, ModelPromoted | CanaryStarted):
            for model, verdict in self.verdicts.items():
                kind = "model.promoted" if isinstance(ev, ModelPromoted) else "model.canary"
                if ev.event_id == derived_event_id(verdict.event_id, kind):
                    how = "promoted" if isinstance(ev, ModelPromoted) else "canary"
                    self.outcomes[model] = Outcome(model, True, ev.release_id, how,
                                                   list(verdict.reasons))
                    return (f"released {ev.release_id}: "
                            + ("champion now" if how == "promoted"
                               else f"canary experiment {ev.experiment} started"))
        if (isinstance(ev, ErrorRaised) and self.decision is not None
                and ev.details.get("decision") == self.decision.event_id):
            return f"attempt {ev.details.get('attempt')} failed: {ev.message}"
        return None


async def follow(
    event_log: Any,
    symbol: str,
    reason: str,
    models: list[str],
    *,
    requested_by: str = "cli",
    timeout_s: float = 3600.0,
    service_wait_s: float = 30.0,
    echo: Callable[[str], None] = print,
    on_progress: Callable[[JobProgress], None] | None = None,
) -> Follower:
    """Append the request, then show its progress until every model has an outcome (or raise
    `AutooptError` after ``timeout_s``, or after ``service_wait_s`` when no service has decided
    on the request by then); ``on_progress`` gets the run's `JobProgress` events (the CLI draws
    its bars from them)."""
    request = RetrainRequested.new(symbol=symbol, reason=reason, requested_by=requested_by)
    follower = Follower(request, list(models))
    queue: asyncio.Queue[Event] = asyncio.Queue()

    async def on_msg(msg: Any) -> None:
        with contextlib.suppress(DataError):
            queue.put_nowait(decode(msg.data))

    subs = [await event_log.nc.subscribe(subject_filter(cat), cb=on_msg)
            for cat in ("decision", "training", "model", "system")]
    try:
        await event_log.append(request)
        echo(f"requested: retrain {symbol} ({reason!r}, request {request.event_id})")
        loop = asyncio.get_running_loop()
        answer_by = loop.time() + service_wait_s
        try:
            async with asyncio.timeout(timeout_s):
                while not follower.done:
                    if follower.answered:
                        ev = await queue.get()
                    else:
                        ev = await _next_or_none(queue, answer_by - loop.time())
                        if ev is None:
                            raise AutooptError(
                                f"no service decided the retrain request of {symbol} within "
                                f"{service_wait_s:.0f}s: is `autoopt serve` running on this log? "
                                f"(request {request.event_id} stays recorded: a service started "
                                "later honours it; --service-wait waits longer)")
                    if on_progress is not None and isinstance(ev, JobProgress) and \
                            follower.run_id is not None and ev.job == follower.run_id:
                        on_progress(ev)
                    line = follower.see(ev)
                    if line is not None:
                        echo(line)
        except TimeoutError:
            stage = "no decision yet (is `autoopt serve` running?)" if follower.decision is None \
                else f"decision {follower.decision.event_id} still running"
            raise AutooptError(
                f"retrain of {symbol} not finished after {timeout_s:.0f}s: {stage}") from None
    finally:
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
    return follower


async def _next_or_none(queue: asyncio.Queue[Event], wait_s: float) -> Event | None:
    """The next event, or None when none arrives within ``wait_s`` seconds."""
    if wait_s <= 0:
        return None if queue.empty() else queue.get_nowait()
    try:
        async with asyncio.timeout(wait_s):
            return await queue.get()
    except TimeoutError:
        return None


__all__ = ["Follower", "Outcome", "follow"]
