"""Guards every trigger passes through: pending/running retrain, cooldown, concurrency limit.

Why one function: every trigger (schedule, degradation, drift, manual) must be held back by the
same rules in the same order, and every hold-back must say which rule and by how much.

Order: pending (decided, not started) → running (TrainingStarted without TrainingFinished) →
cooldown (since the last retrain decision or release; manual requests skip it when
``manual_bypasses_cooldown``) → max_concurrent (symbols in flight, across all symbols).
"""

from __future__ import annotations

from typing import Any

from autoopt.clock import NS_PER_S
from autoopt.core.commands import Retrain, Suppressed
from autoopt.core.context import Ctx
from autoopt.core.state import MAX_MANUAL_DONE, PendingRetrain, SymbolState


def check(ctx: Ctx, sym: SymbolState, *, manual: bool = False) -> tuple[str, dict[str, Any]] | None:
    """None when a retrain of ``sym`` may start now, else (suppression reason, details)."""
    if sym.pending is not None:
        return "suppressed.pending", {
            "pending_id": sym.pending.id,
            "pending_reason": sym.pending.reason,
            "decided_ns": sym.pending.decided_ns,
        }
    if sym.running:
        return "suppressed.running", {"run_ids": sorted(sym.running)}
    cooldown_ns = ctx.eff(sym.symbol).cooldown_ns
    if (
        sym.last_retrain_ns is not None
        and cooldown_ns > 0
        and not (manual and ctx.policy.manual_bypasses_cooldown)
    ):
        until = sym.last_retrain_ns + cooldown_ns
        if ctx.now < until:
            return "suppressed.cooldown", {
                "since_ns": sym.last_retrain_ns,
                "cooldown_s": cooldown_ns / NS_PER_S,
                "remaining_s": (until - ctx.now) / NS_PER_S,
            }
    in_flight = ctx.data.in_flight
    if len(in_flight) >= ctx.policy.max_concurrent:
        return "suppressed.max_concurrent", {
            "in_flight": len(in_flight),
            "max_concurrent": ctx.policy.max_concurrent,
            "symbols": list(in_flight),
        }
    return None


def request_retrain(
    ctx: Ctx,
    sym: SymbolState,
    trigger: str,
    details: dict[str, Any],
    *,
    manual: bool = False,
) -> bool:
    """Emit Retrain (and mark it pending) if the guards allow, else Suppressed; True if retrained.

    A retrain satisfies every queued manual request of the symbol (their ids go in
    ``details["satisfies"]``).
    """
    blocked = check(ctx, sym, manual=manual)
    if blocked is not None:
        reason, extra = blocked
        ctx.emit(Suppressed, sym.symbol, reason, trigger, {**details, **extra})
        return False
    queue = ctx.data.manual_queue
    satisfied = [r.event_id for r in queue if r.symbol == sym.symbol]
    if satisfied:
        ctx.data.manual_queue = [r for r in queue if r.symbol != sym.symbol]
        done = ctx.data.manual_done
        done.extend(satisfied)
        if len(done) > MAX_MANUAL_DONE:
            del done[: len(done) - MAX_MANUAL_DONE]
        details = {**details, "satisfies": satisfied}
    cmd = ctx.emit(Retrain, sym.symbol, trigger, trigger, details)
    sym.pending = PendingRetrain(
        id=cmd.id, reason=trigger, decided_ns=ctx.now, event_id=ctx.event.event_id
    )
    sym.last_retrain_ns = ctx.now
    ctx.refresh_in_flight(sym)
    return True


__all__ = ["check", "request_retrain"]
