"""Decide an experiment: promote the winner, roll the challenger back, or keep running.

Why: a decision made on live money must follow fixed rules and carry the numbers it was made on,
so it can be audited and replayed.

Rules, in order, for each challenger against the champion:
1. Guardrails (any time): the challenger's max drawdown of cumulative return, its longest loss
   streak, or its error rate (once ``min_routed`` signals were routed) beyond the limit → roll
   back: the experiment concludes with the champion as winner.
2. Before every arm has ``min_samples`` trades: keep running.
3. Sample-ratio mismatch on the recorded assignments (split experiments) → keep running, no
   promotion: the split is broken and the comparison cannot be trusted.
4. The always-valid sequential test (`autoopt.ab.sequential`, level ``alpha / challengers``)
   significant: the better arm wins (promote a better challenger; roll back a worse one).
5. Past ``max_duration_s``: conclude without a winner (the champion stays).
6. Otherwise keep running.

Each decision carries the statistics: per-variant running stats, Welch, Mann–Whitney, the
bootstrap CI of the Sharpe difference, the sequential result, Jobson–Korkie–Memmel on paired
(shadow) trades, and the SRM check. With ``auto_decide`` the `DecisionApplier` writes
`ExperimentConcluded` (plus `ModelPromoted` when a concrete symbol's release changes); without,
it writes a `DecisionMade` recommendation (once per experiment, action and variant).

Promotion goes through `autoopt.promotion.promote`, the one path every promotion takes: the
winner's release is verified against its `ModelReleased` first, then the conclusion is
recorded, then ``current`` is switched and `ModelPromoted` appended, so watchers and the
registry agree. A winner whose release cannot be promoted (never recorded, missing or tampered
files, no registry) concludes without a winner, the refusal in the reason: the champion stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal

import msgspec

from autoopt.ab import stats
from autoopt.ab.experiments import ALL_SYMBOLS, Experiment, ExperimentBook, ExperimentService
from autoopt.ab.sequential import msprt
from autoopt.ab.tracking import OutcomeTracker, VariantStats
from autoopt.clock import Clock, SystemClock
from autoopt.errors import ArtifactError, DataError
from autoopt.events import (
    DecisionMade,
    ErrorRaised,
    Event,
    Fill,
    ModelPromoted,
    SignalRouted,
    SignalsRouted,
    TradeOutcome,
    decode,
)
from autoopt.ids import derived_event_id
from autoopt.log import EventLog
from autoopt.promotion import promote, recorded_release
from autoopt.registry import Recorded
from autoopt.subjects import subject_filter, subject_filter_for_type

Action = Literal["promote", "rollback", "conclude", "keep"]


class Decision(msgspec.Struct, frozen=True):
    """What to do with an experiment and why; ``variant`` is the one promoted or rolled back."""

    experiment: str
    action: Action
    variant: str | None
    reason: str
    statistics: dict[str, Any]


def _guardrail_trip(exp: Experiment, st: VariantStats) -> str | None:
    g = exp.guardrails
    if g.max_drawdown is not None and st.max_drawdown > g.max_drawdown:
        return f"drawdown {st.max_drawdown:.4f} > max_drawdown {g.max_drawdown:.4f}"
    if g.max_loss_streak is not None and st.max_loss_streak >= g.max_loss_streak:
        return f"loss streak {st.max_loss_streak} >= max_loss_streak {g.max_loss_streak}"
    if (
        g.max_error_rate is not None
        and st.routed >= g.min_routed
        and st.error_rate > g.max_error_rate
    ):
        return (
            f"error rate {st.error_rate:.4f} ({st.errors}/{st.routed}) > max_error_rate "
            f"{g.max_error_rate:.4f}"
        )
    return None


def _safe(fn: Any, *args: Any, **kw: Any) -> dict[str, Any] | None:
    """A test's result as plain data, or None when the data cannot support it yet."""
    try:
        return msgspec.to_builtins(fn(*args, **kw))
    except DataError:
        return None


def compare(
    exp: Experiment, champ: VariantStats, chal: VariantStats, *, alpha: float, seed: int = 0
) -> dict[str, Any]:
    """Every test of one challenger against the champion, as plain data (None: too few data)."""
    out: dict[str, Any] = {"welch": None, "mann_whitney": None, "sharpe_ci": None}
    out["sequential"] = None
    if champ.n >= 2 and chal.n >= 2:
        out["welch"] = _safe(
            stats.welch_from_moments,
            champ.mean, champ.variance, champ.n, chal.mean, chal.variance, chal.n, alpha=alpha,
        )  # fmt: skip
        out["mann_whitney"] = _safe(stats.mann_whitney_u, champ.returns, chal.returns)
        out["sharpe_ci"] = _safe(
            stats.bootstrap_sharpe_diff, champ.returns, chal.returns, n_boot=1000, seed=seed
        )
        out["sequential"] = _safe(
            msprt,
            champ.mean, champ.variance, champ.n, chal.mean, chal.variance, chal.n,
            alpha=alpha, tuning=exp.tuning,
        )  # fmt: skip
    paired = sorted(set(champ.by_signal) & set(chal.by_signal))
    out["paired_trades"] = len(paired)
    out["jobson_korkie"] = None
    if exp.shadow and len(paired) >= 3:
        a = [champ.by_signal[s] for s in paired]
        b = [chal.by_signal[s] for s in paired]
        out["jobson_korkie"] = _safe(stats.jobson_korkie_memmel, a, b)
    return out


def assignment_counts(exp: Experiment, tracker: OutcomeTracker) -> dict[str, int]:
    """Units per variant: `VariantAssigned` records for symbol/account units; for signal units
    each live `SignalRouted` is one assignment."""
    if exp.unit == "signal_id":
        per = tracker.of(exp.name)
        return {v.name: per[v.name].routed if v.name in per else 0 for v in exp.variants}
    counts = dict.fromkeys((v.name for v in exp.variants), 0)
    for variant in exp.assigned.values():
        counts[variant] = counts.get(variant, 0) + 1
    return counts


def analyse(exp: Experiment, tracker: OutcomeTracker, *, seed: int = 0) -> dict[str, Any]:
    """The statistics a decision about ``exp`` carries."""
    per = tracker.of(exp.name)
    empty = VariantStats()
    champ = per.get(exp.champion, empty)
    k = max(1, len(exp.challengers))
    alpha = exp.alpha / k
    result: dict[str, Any] = {
        "champion": exp.champion,
        "alpha": exp.alpha,
        "alpha_per_challenger": alpha,
        "variants": {v.name: per.get(v.name, empty).to_dict() for v in exp.variants},
        "comparisons": {
            v.name: compare(exp, champ, per.get(v.name, empty), alpha=alpha, seed=seed)
            for v in exp.challengers
        },
        "srm": None,
    }
    if not exp.shadow:
        counts = assignment_counts(exp, tracker)
        if sum(counts.values()) > 0:
            result["srm"] = _safe(stats.sample_ratio_mismatch, counts, exp.weights)
    return result


def decide(exp: Experiment, tracker: OutcomeTracker, now_ns: int, *, seed: int = 0) -> Decision:
    """Apply the module's rules to the experiment's current numbers."""
    st = analyse(exp, tracker, seed=seed)
    per = tracker.of(exp.name)
    empty = VariantStats()

    def done(action: Action, variant: str | None, reason: str) -> Decision:
        return Decision(exp.name, action, variant, reason, st)

    for v in exp.challengers:
        trip = _guardrail_trip(exp, per.get(v.name, empty))
        if trip is not None:
            return done("rollback", v.name, f"guardrail: challenger {v.name!r} {trip}")
    counts = {v.name: per.get(v.name, empty).n for v in exp.variants}
    short = {k: n for k, n in counts.items() if n < exp.min_samples}
    if short and not exp.expired(now_ns):
        return done("keep", None, f"collecting: {short} trades of {exp.min_samples} needed")
    srm = st["srm"]
    if srm is not None and srm["mismatch"]:
        return done(
            "keep",
            None,
            f"sample ratio mismatch (p={srm['p_value']:.2e}): observed {srm['observed']} vs "
            f"weights {exp.weights}; fix the split before trusting any result",
        )
    if not short:
        best: tuple[float, str] | None = None
        for v in exp.challengers:
            seq = st["comparisons"][v.name]["sequential"]
            if seq is None or not seq["significant"]:
                continue
            if seq["diff"] < 0:
                return done(
                    "rollback",
                    v.name,
                    f"challenger {v.name!r} is worse: mean return diff {seq['diff']:.6f}, "
                    f"always-valid p={seq['p_value']:.4g} < {st['alpha_per_challenger']:.4g}",
                )
            if best is None or seq["diff"] > best[0]:
                best = (seq["diff"], v.name)
        if best is not None:
            seq = st["comparisons"][best[1]]["sequential"]
            return done(
                "promote",
                best[1],
                f"challenger {best[1]!r} is better: mean return diff {seq['diff']:.6f}, "
                f"always-valid p={seq['p_value']:.4g} < {st['alpha_per_challenger']:.4g}",
            )
    if exp.expired(now_ns):
        return done(
            "conclude",
            None,
            f"max duration {exp.max_duration_s:.0f}s reached without a significant difference",
        )
    return done("keep", None, "no significant difference yet")


def winner_of(exp: Experiment, d: Decision) -> str | None:
    """The winner recorded when ``d`` concludes ``exp``."""
    if d.action == "promote":
        return d.variant
    if d.action == "rollback":
        return exp.champion
    return None


def promotion_target(exp: Experiment, winner: str | None) -> str | None:
    """The release a conclusion with ``winner`` makes champion (None: the champion stays, or a
    config-only winner, or an experiment over every symbol)."""
    if winner is None or winner == exp.champion or exp.symbol == ALL_SYMBOLS:
        return None
    release = exp.variant(winner).release_id
    return None if release == exp.champion_spec.release_id else release


async def check_promotable(
    log: EventLog, registry: Any, exp: Experiment, winner: str | None
) -> tuple[Recorded | None, str | None]:
    """(what the log recorded for the winner's release, None) when it can be promoted, or
    (None, why not); (None, None) when the winner needs no promotion."""
    target = promotion_target(exp, winner)
    if target is None:
        return None, None
    if registry is None:
        return None, f"promotion refused: no model registry to switch to {target}"
    try:
        recorded = await recorded_release(log, exp.symbol, target)
        await asyncio.to_thread(registry.load, exp.symbol, target, recorded=recorded)
    except (ArtifactError, OSError) as exc:
        return None, f"promotion refused: {exc}"
    return recorded, None


async def conclude_and_promote(
    service: ExperimentService,
    registry: Any,
    name: str,
    winner: str | None,
    reason: str,
    statistics: dict[str, Any],
    *,
    cause: Event | None = None,
    clock: Clock | None = None,
) -> list[Event]:
    """Conclude ``name`` with ``winner`` and promote its release (module doc): the path an
    automatic decision and `autoopt ab conclude` share."""
    exp = service.book.get(name)
    recorded, refused = await check_promotable(service.log, registry, exp, winner)
    if refused is not None:
        winner, reason = None, f"{reason}; {refused}"
    concluded = await service.conclude(name, winner, reason, statistics, cause=cause)
    out: list[Event] = [concluded]
    promoted = promotion_event(exp, winner, reason, cause=concluded, clock=clock)
    if promoted is not None:
        await promote(service.log, registry, promoted, recorded=recorded)
        out.append(promoted)
    return out


def promotion_event(
    exp: Experiment,
    winner: str | None,
    reason: str,
    *,
    cause: Event,
    clock: Clock | None = None,
) -> ModelPromoted | None:
    """`ModelPromoted` for a winner whose release differs from the champion's, on a concrete
    symbol (config-only winners are recorded by the conclusion alone)."""
    release = promotion_target(exp, winner)
    if release is None:
        return None
    return ModelPromoted.new(
        clock=clock,
        cause=cause,
        step="promote",
        symbol=exp.symbol,
        release_id=release,
        previous_release_id=exp.champion_spec.release_id,
        reason=f"experiment {exp.name}: {reason}",
    )


def _conclude_command(name: str, winner: str | None) -> str:
    return f"autoopt ab conclude {name}" + (f" --winner {winner}" if winner else "")


class DecisionApplier:
    """Writes a decision to the log: applied when the experiment is ``auto_decide``, else a
    recommendation. Keep-running decisions write nothing."""

    def __init__(
        self, service: ExperimentService, *, clock: Clock | None = None, registry: Any = None
    ) -> None:
        self.service = service
        self.clock = clock
        self.registry = registry
        """Where a promotion switches ``current``; None refuses promotions (module doc)."""

    async def apply(self, d: Decision, *, cause: Event | None = None) -> list[Event]:
        if d.action == "keep":
            return []
        exp = self.service.book.get(d.experiment)
        if exp.status == "concluded":
            return []
        if not exp.auto_decide:
            rec = DecisionMade.new(
                clock=self.clock,
                event_id=derived_event_id(
                    f"experiment/{exp.name}", f"recommend/{d.action}/{d.variant}"
                ),
                symbol=exp.symbol,
                kind=f"ab.{d.action}",
                reason=d.reason,
                details={"experiment": exp.name, "variant": d.variant, "statistics": d.statistics},
                policy="ab",
                commands=[_conclude_command(exp.name, winner_of(exp, d))],
            )
            await self.service.log.append(rec)
            return [rec]
        return await conclude_and_promote(
            self.service, self.registry, exp.name, winner_of(exp, d), f"{d.action}: {d.reason}",
            d.statistics, cause=cause, clock=self.clock,
        )


class ExperimentSupervisor:
    """Watches outcomes live and decides running experiments.

    Subscribes (core NATS) to routes, trades, errors and experiment events first, then rebuilds
    the projection and the tracker from the log, then applies what arrived meanwhile (duplicates
    are no-ops), so nothing falls in the gap. Guardrails are checked on every joined outcome; the
    full decision (with its bootstrap) runs at most every ``interval_s`` per experiment.
    """

    def __init__(
        self,
        service: ExperimentService,
        tracker: OutcomeTracker,
        *,
        clock: Clock | None = None,
        interval_s: float = 5.0,
        seed: int = 0,
        registry: Any = None,
    ) -> None:
        self.service = service
        self.tracker = tracker
        self.applier = DecisionApplier(service, clock=clock, registry=registry)
        self.clock = clock or SystemClock()
        self.interval_ns = int(interval_s * 1e9)
        self.seed = seed
        self.decisions: list[tuple[Decision, list[Event]]] = []
        self._last: dict[str, int] = {}
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subs: list[Any] = []
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, log: EventLog, **kw: Any) -> ExperimentSupervisor:
        """Subscribe, rebuild from ``log`` and start deciding."""
        book = ExperimentBook()
        self = cls(ExperimentService(log, book, clock=kw.get("clock")), OutcomeTracker(), **kw)
        await self.start()
        return self

    async def start(self) -> None:
        log = self.service.log

        async def on_msg(msg: Any) -> None:
            with contextlib.suppress(DataError):
                self._queue.put_nowait(decode(msg.data))

        for filt in (
            subject_filter("experiment"),
            subject_filter_for_type(SignalRouted),
            subject_filter_for_type(SignalsRouted),
            subject_filter("trade"),
            subject_filter("system"),
        ):
            self._subs.append(await log.nc.subscribe(filt, cb=on_msg))
        async for chunk in log.replay_batches("EXPERIMENTS"):
            for rec in chunk:
                self.service.book.apply(rec.event)
        await self.tracker.replay(log)
        self._task = asyncio.create_task(self._work())

    async def _work(self) -> None:
        while True:
            ev = await self._queue.get()
            try:
                await self.on_event(ev)
            except Exception:
                logging.getLogger("autoopt.ab").exception("supervisor: event %s", ev.event_id)

    async def on_event(self, ev: Event) -> Decision | None:
        """Fold one event in and decide its experiment when it is due."""
        book = self.service.book
        if book.apply(ev):
            return None
        if not self.tracker.apply(ev):
            return None
        decided = None
        for name in self._experiments_of(ev):
            decided = await self._maybe_decide(name, ev) or decided
        return decided

    async def _maybe_decide(self, name: str, ev: Event) -> Decision | None:
        book = self.service.book
        if name not in book.experiments:
            return None
        exp = book.experiments[name]
        if exp.status != "running":
            return None
        now = self.clock.now_ns()
        per = self.tracker.of(name)
        tripped = any(
            _guardrail_trip(exp, per[v.name]) is not None for v in exp.challengers if v.name in per
        )
        if not tripped and now - self._last.get(name, -self.interval_ns) < self.interval_ns:
            return None
        return await self.evaluate(name, cause=ev)

    def _experiments_of(self, ev: Event) -> list[str]:
        if isinstance(ev, SignalsRouted):
            return list(dict.fromkeys(r.experiment for r in ev.routes))
        if isinstance(ev, SignalRouted):
            return [ev.experiment]
        key = None
        if isinstance(ev, TradeOutcome | Fill):
            key = self.tracker._key(ev)
        elif isinstance(ev, ErrorRaised):
            key = self.tracker._error_key(ev)
        return [key[0]] if key else []

    async def evaluate(self, name: str, *, cause: Event | None = None) -> Decision:
        """Decide ``name`` now and write the decision."""
        exp = self.service.book.get(name)
        now = self.clock.now_ns()
        self._last[name] = now
        d = decide(exp, self.tracker, now, seed=self.seed)
        written = await self.applier.apply(d, cause=cause)
        self.decisions.append((d, written))
        return d

    async def drain(self) -> None:
        """Process everything received so far (tests and shutdown)."""
        while not self._queue.empty():
            await self.on_event(self._queue.get_nowait())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


__all__ = [
    "Action",
    "Decision",
    "DecisionApplier",
    "ExperimentSupervisor",
    "analyse",
    "assignment_counts",
    "check_promotable",
    "compare",
    "conclude_and_promote",
    "decide",
    "promotion_event",
    "promotion_target",
    "winner_of",
]
