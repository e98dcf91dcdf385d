"""What the decision core outputs: commands to act on and outcomes to record, all with reasons.

Why Structs: outputs are digested (replay must reproduce them byte for byte) and recorded in the
log as `DecisionMade` events, so they must encode deterministically and decode back exactly.

Every output carries
    ``id``        deterministic: `derived_event_id(event_id, "core.<n>")`, n = its position among
                  the outputs of that event; use it as the DecisionMade ``event_id`` so a retried
                  append dedups.
    ``symbol``    the symbol concerned.
    ``reason``    machine-readable outcome code (see below).
    ``trigger``   the trigger that was considered ("schedule", "degradation", "drift.psi",
                  "drift.ks", "drift.adwin", "drift.page_hinkley", "drift.reported", "manual").
    ``details``   the numbers behind it (msgpack/JSON-compatible builtins only).
    ``event_id``  the event being decided when this came out.
    ``ts``        the core's clock (ns) at that moment.

Kinds and reason codes
    `Retrain`     act: start a retrain. ``reason == trigger``.
    `Suppressed`  a trigger fired but a guard held it back: "suppressed.pending" (a retrain was
                  decided and has not started), "suppressed.running" (TrainingStarted without
                  TrainingFinished), "suppressed.cooldown", "suppressed.max_concurrent".
    `Held`        a policy evaluated and did not fire: "held.degradation" (no metric beyond the
                  threshold), "held.degradation.baseline" (the window became the baseline),
                  "held.drift" (PSI/KS below thresholds).
    `Expired`     an in-flight slot was released by timeout: "expired.pending", "expired.running".
"""

from __future__ import annotations

from typing import Any

import msgspec

from autoopt.errors import DataError
from autoopt.events import DecisionMade, Event


class CommandBase(msgspec.Struct, tag_field="kind", kw_only=True, frozen=True):
    """Common fields of every core output."""

    id: str
    symbol: str
    reason: str
    trigger: str
    details: dict[str, Any]
    event_id: str
    ts: int

    @property
    def kind(self) -> str:
        tag = self.__struct_config__.tag
        assert isinstance(tag, str)
        return tag

    @property
    def actionable(self) -> bool:
        """True when a runner must do something (start a retrain, free a slot)."""
        return False


class Retrain(CommandBase, tag="retrain", kw_only=True, frozen=True):
    """Start a retrain of ``symbol`` because of ``reason``."""

    @property
    def actionable(self) -> bool:
        return True


class Suppressed(CommandBase, tag="suppressed", kw_only=True, frozen=True):
    """A trigger fired but a guard (``reason``) held it back."""


class Held(CommandBase, tag="held", kw_only=True, frozen=True):
    """A policy evaluated and found nothing to act on; ``details`` say how close it came."""


class Expired(CommandBase, tag="expired", kw_only=True, frozen=True):
    """An in-flight retrain stopped counting (timeout); a runner may cancel or clean it up."""

    @property
    def actionable(self) -> bool:
        return True


Command = Retrain | Suppressed | Held | Expired
COMMAND_TYPES: dict[str, type[CommandBase]] = {
    t.__struct_config__.tag: t  # type: ignore[misc]
    for t in (Retrain, Suppressed, Held, Expired)
}

# Dict keys sorted, so equal outputs give equal bytes whatever order details were built in.
_encoder = msgspec.msgpack.Encoder(order="deterministic")
_decoder = msgspec.msgpack.Decoder(list[Command])


def encode_commands(commands: list[Command]) -> bytes:
    """Deterministic msgpack bytes of a list of outputs (what digests are taken over)."""
    return _encoder.encode(commands)


def decode_commands(data: bytes) -> list[Command]:
    """Outputs back from `encode_commands` bytes; DataError if they are not."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise DataError(f"bytes are not a list of core commands: {exc}") from exc


def decision_event(command: Command, cause: Event | None = None) -> DecisionMade:
    """The `DecisionMade` event that records ``command``.

    ``event_id`` is the command's id (dedups a retried append), ``ts_event``/``ts_init`` are the
    core's clock, ``causation_id`` is the decided event, ``policy`` is the trigger.
    """
    correlation = None
    if cause is not None:
        if cause.event_id != command.event_id:
            raise DataError(
                f"decision_event: command {command.id} came from event {command.event_id}, "
                f"not {cause.event_id}"
            )
        correlation = cause.correlation_id or cause.event_id
    return DecisionMade(
        event_id=command.id,
        ts_event=command.ts,
        ts_init=command.ts,
        causation_id=command.event_id,
        correlation_id=correlation,
        symbol=command.symbol,
        kind=command.kind,
        reason=command.reason,
        details=command.details,
        policy=command.trigger,
        commands=[command.id],
    )


def command_from_decision(event: DecisionMade) -> Command:
    """The core output a `DecisionMade` recorded (inverse of `decision_event`)."""
    cls = COMMAND_TYPES.get(event.kind)
    if cls is None:
        raise DataError(
            f"DecisionMade {event.event_id}: kind {event.kind!r} is not a core command kind "
            f"({', '.join(sorted(COMMAND_TYPES))})"
        )
    if event.causation_id is None:
        raise DataError(f"DecisionMade {event.event_id}: no causation_id (the decided event)")
    return cls(  # type: ignore[return-value]
        id=event.event_id,
        symbol=event.symbol,
        reason=event.reason,
        trigger=event.policy,
        details=dict(event.details),
        event_id=event.causation_id,
        ts=event.ts_event,
    )


def describe(command: Command) -> str:
    """One human line: kind, symbol, reason and the key numbers."""
    d = command.details
    head = f"{command.kind} {command.symbol} [{command.reason}]"
    if command.kind != "retrain" and command.trigger and command.trigger != command.reason:
        head += f" (trigger {command.trigger})"
    parts: list[str] = []
    metrics = d.get("metrics")
    if isinstance(metrics, dict) and "threshold" in d:
        for name, m in metrics.items():
            if isinstance(m, dict) and isinstance(m.get("drop"), float):
                mark = ">" if m["drop"] > d["threshold"] else "<="
                parts.append(f"{name} drop {m['drop']:.1%} {mark} {d['threshold']:.1%}")
    for key in ("psi_max", "ks_min_pvalue", "remaining_s", "in_flight", "cron", "stream", "value"):
        if key in d:
            v = d[key]
            parts.append(f"{key}={v:.4g}" if isinstance(v, float) else f"{key}={v}")
    return head + (": " + ", ".join(parts) if parts else "")


__all__ = [
    "COMMAND_TYPES",
    "Command",
    "CommandBase",
    "Expired",
    "Held",
    "Retrain",
    "Suppressed",
    "command_from_decision",
    "decision_event",
    "decode_commands",
    "describe",
    "encode_commands",
]
