"""Replay a log range through the decision core: the decision sequence, its digest, and where two
configs decide differently.

Digest (``ReplayResult.digest``), stable across processes, machines and runs:
    SHA-256 over ``b"autoopt.decisions/1\\n"`` followed by, for every `DecisionRecord` in order,
    its length as 8 little-endian bytes and its msgpack encoding with sorted map keys. Records
    exist only for events that produced at least one output, and carry the event's index in the
    replayed range, so the same outputs at other events give another digest.

``log_digest`` is the same construction over (event_id, type tag, now_ns) of every event replayed,
so two results can be checked to come from the same input before being compared.

An event `decide` raises on changes nothing: the service dead-letters it and keeps the state it
had, and a replay does the same (``ReplayResult.failed`` lists those events), so both reach the
same state and decisions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

import msgspec

from autoopt.config import Config, PolicyConfig
from autoopt.core.commands import Command, describe
from autoopt.core.context import resolve
from autoopt.core.decide import decide
from autoopt.core.detectors import StreamDetectors
from autoopt.core.detectors import builtin as builtin_detectors
from autoopt.core.state import State
from autoopt.errors import ReplayMismatch
from autoopt.events import DecisionMade, Event

DIGEST_PREFIX = b"autoopt.decisions/1\n"
LOG_DIGEST_PREFIX = b"autoopt.replay-log/1\n"

_encoder = msgspec.msgpack.Encoder(order="deterministic")


class DecisionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The outputs of one replayed event."""

    index: int
    event_id: str
    event_type: str
    now_ns: int
    commands: list[Command]


class ReplayResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a replay decided: records (events with outputs only), digest, input identity."""

    decisions: list[DecisionRecord]
    digest: str
    n_events: int
    log_digest: str
    failed: list[str] = []
    """Ids of the events `decide` raised on (skipped, as the service skips them)."""

    def commands(self) -> list[Command]:
        return [c for r in self.decisions for c in r.commands]

    def retrains(self) -> list[Command]:
        return [c for c in self.commands() if c.kind == "retrain"]

    def counts(self) -> dict[str, int]:
        """Outputs by reason code, sorted by code."""
        out: dict[str, int] = {}
        for c in self.commands():
            out[c.reason] = out.get(c.reason, 0) + 1
        return dict(sorted(out.items()))


class _Hasher:
    __slots__ = ("_h",)

    def __init__(self, prefix: bytes) -> None:
        self._h = hashlib.sha256(prefix)

    def add(self, obj: object) -> None:
        raw = _encoder.encode(obj)
        self._h.update(len(raw).to_bytes(8, "little"))
        self._h.update(raw)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def decisions_digest(records: Iterable[DecisionRecord]) -> str:
    """The digest of a decision sequence (see the module docstring)."""
    h = _Hasher(DIGEST_PREFIX)
    for rec in records:
        h.add(rec)
    return h.hexdigest()


def decide_step(
    state: State,
    event: Event,
    now_ns: int,
    config: Config | PolicyConfig,
    *,
    detectors: StreamDetectors | None = None,
) -> tuple[State, list[Command]]:
    """`decide` on a copy of ``state``: ``state`` itself is untouched, also when decide raises.
    The service's decider uses it to commit a step only once its results are stored."""
    return decide(State.from_bytes(state.to_bytes()), event, now_ns, config, detectors=detectors)


def _restore(state: State, snapshot: bytes) -> None:
    """Put ``state`` back, in place, to what ``snapshot`` holds."""
    fresh = State.from_bytes(snapshot)
    state.data, state._live = fresh.data, fresh._live  # noqa: SLF001 - same package


def replay_decisions(
    events: Iterable[Event | tuple[Event, int]],
    config: Config | PolicyConfig,
    *,
    state: State | None = None,
    detectors: StreamDetectors | None = None,
) -> ReplayResult:
    """Run ``events`` through `decide` in order, from ``state`` (a fresh one by default).

    Each item is an event (its clock is ``event.ts_event``) or ``(event, now_ns)`` with the
    recorded clock (e.g. the JetStream timestamp). ``state`` is updated in place. An event
    decide raises on is skipped with the state it found (`ReplayResult.failed`): the replay
    restarts from the initial state without it, so the fast path never copies the state.
    ``detectors``: the streaming drift detectors the service ran (`autoopt.core.detectors`;
    None: the built-ins); a config naming one they lack is a ConfigError before any event.
    """
    detectors = detectors if detectors is not None else builtin_detectors()
    detectors.check(resolve(config).policy)
    st = state if state is not None else State()
    items = [item if isinstance(item, tuple) else (item, item.ts_event) for item in events]
    initial = st.to_bytes()
    failed: set[int] = set()
    while True:
        try:
            return _replay(items, config, st, failed, detectors)
        except _StepFailed as exc:
            failed.add(exc.index)
            _restore(st, initial)


class _StepFailed(Exception):
    def __init__(self, index: int) -> None:
        self.index = index


def _replay(
    items: list[tuple[Event, int]],
    config: Config | PolicyConfig,
    st: State,
    failed: set[int],
    detectors: StreamDetectors,
) -> ReplayResult:
    records: list[DecisionRecord] = []
    digest = _Hasher(DIGEST_PREFIX)
    log = _Hasher(LOG_DIGEST_PREFIX)
    for n, (event, now) in enumerate(items):
        tag = event.type_tag()
        log.add((event.event_id, tag, int(now)))
        if n in failed:
            continue
        try:
            st, out = decide(st, event, now, config, detectors=detectors)
        except Exception as exc:
            raise _StepFailed(n) from exc
        if out:
            rec = DecisionRecord(
                index=n, event_id=event.event_id, event_type=tag, now_ns=st.clock_ns, commands=out
            )
            records.append(rec)
            digest.add(rec)
    return ReplayResult(
        decisions=records, digest=digest.hexdigest(), n_events=len(items),
        log_digest=log.hexdigest(), failed=[items[i][0].event_id for i in sorted(failed)],
    )


class DecisionDiff(msgspec.Struct, frozen=True, kw_only=True):
    """One event where two replays decided differently, with both sides' outputs and why."""

    index: int
    event_id: str
    event_type: str
    now_ns: int
    a: list[Command]
    b: list[Command]
    explanation: str


Compare = Literal["actions", "outcomes", "exact"]


def _signature(cmds: list[Command], compare: Compare) -> object:
    if compare == "exact":
        return _encoder.encode(cmds)
    if compare == "outcomes":
        return [(c.kind, c.symbol, c.reason) for c in cmds]
    return [(c.kind, c.symbol, c.reason) for c in cmds if c.actionable]


def _side(label: str, cmds: list[Command]) -> str:
    if not cmds:
        return f"{label}: no output"
    return f"{label}: " + "; ".join(describe(c) for c in cmds)


def diff_decisions(
    a: ReplayResult, b: ReplayResult, *, compare: Compare = "actions"
) -> list[DecisionDiff]:
    """Where two replays of the same log differ, in event order.

    ``compare``: "actions" (default) compares the actionable outputs (Retrain, Expired) by kind,
    symbol and reason; "outcomes" compares every output's kind, symbol and reason; "exact"
    compares the encoded outputs including details. Each difference lists all outputs of both
    sides at that event, whose reasons and numbers explain it (a cooldown, a drop below the
    threshold...). Raises ReplayMismatch when the two did not replay the same events.
    """
    if a.log_digest != b.log_digest or a.n_events != b.n_events:
        raise ReplayMismatch(
            f"diff_decisions: the two results replayed different logs "
            f"({a.n_events} events, log {a.log_digest[:12]} vs {b.n_events} events, "
            f"log {b.log_digest[:12]})"
        )
    by_a = {r.index: r for r in a.decisions}
    by_b = {r.index: r for r in b.decisions}
    diffs: list[DecisionDiff] = []
    for index in sorted(by_a.keys() | by_b.keys()):
        ra, rb = by_a.get(index), by_b.get(index)
        ca = ra.commands if ra is not None else []
        cb = rb.commands if rb is not None else []
        if _signature(ca, compare) == _signature(cb, compare):
            continue
        ref = ra if ra is not None else rb
        assert ref is not None
        diffs.append(
            DecisionDiff(
                index=index,
                event_id=ref.event_id,
                event_type=ref.event_type,
                now_ns=ref.now_ns,
                a=ca,
                b=cb,
                explanation=_side("A", ca) + " | " + _side("B", cb),
            )
        )
    return diffs


def verify_recorded(
    events: Iterable[Event | tuple[Event, int]],
    result: ReplayResult,
    *,
    kinds: tuple[str, ...] = ("retrain", "expired"),
) -> int:
    """Check the DecisionMade events in ``events`` against a replay of the same range.

    Every recorded decision must equal the replayed output with its id, and every replayed output
    of ``kinds`` must have been recorded. Returns how many recorded decisions matched; raises
    ReplayMismatch naming the first disagreement.
    """
    from autoopt.core.commands import command_from_decision

    replayed = {c.id: c for c in result.commands()}
    recorded: dict[str, Command] = {}
    for item in events:
        ev = item[0] if isinstance(item, tuple) else item
        if isinstance(ev, DecisionMade):
            recorded[ev.event_id] = command_from_decision(ev)
    for cid, cmd in recorded.items():
        got = replayed.get(cid)
        if got is None:
            raise ReplayMismatch(f"recorded decision {cid} ({describe(cmd)}) was not replayed")
        if _encoder.encode(got) != _encoder.encode(cmd):
            raise ReplayMismatch(
                f"decision {cid} differs: recorded {describe(cmd)}; replayed {describe(got)}"
            )
    for cid, cmd in replayed.items():
        if cmd.kind in kinds and cid not in recorded:
            raise ReplayMismatch(f"replayed decision {cid} ({describe(cmd)}) is not in the log")
    return len(recorded)


__all__ = [
    "Compare",
    "DecisionDiff",
    "DecisionRecord",
    "ReplayResult",
    "decide_step",
    "decisions_digest",
    "diff_decisions",
    "replay_decisions",
    "verify_recorded",
]
