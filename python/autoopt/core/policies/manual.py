"""Manual policy: a RetrainRequested (an operator's, an engine's: any reason) is honoured
exactly once; its reason is recorded in the retrain's details (``request_reason``).

A request joins a queue (a redelivered request, same ``event_id``, is ignored). On every event the
queue is tried in arrival order: a request whose symbol passes the guards becomes a Retrain; one
that is held back stays queued and is reported once, as Suppressed, when it arrives. Any retrain
of the symbol (from any policy) satisfies its queued requests. With
``manual_bypasses_cooldown`` (default) the cooldown does not hold manual requests back.
The retrain's trigger is always ``"manual"`` (the policy), whatever the request's reason.
"""

from __future__ import annotations

from autoopt.core.commands import Suppressed
from autoopt.core.context import Ctx
from autoopt.core.policies.guards import check, request_retrain
from autoopt.core.state import ManualRequest
from autoopt.events import RetrainRequested

MANUAL = "manual"


def on_request(ctx: Ctx, ev: RetrainRequested) -> None:
    data = ctx.data
    if ev.event_id in data.manual_done or any(r.event_id == ev.event_id for r in data.manual_queue):
        return
    ctx.sym(ev.symbol)
    data.manual_queue.append(
        ManualRequest(
            event_id=ev.event_id,
            symbol=ev.symbol,
            requested_ns=ctx.now,
            requested_by=ev.requested_by,
            reason=ev.reason,
        )
    )


def drain(ctx: Ctx) -> None:
    """Turn queued requests whose symbol may retrain now into Retrains (arrival order)."""
    if not ctx.data.manual_queue:
        return
    for req in list(ctx.data.manual_queue):
        if req not in ctx.data.manual_queue:  # satisfied by an earlier request of its symbol
            continue
        sym = ctx.sym(req.symbol)
        details = {
            "request_id": req.event_id,
            "requested_by": req.requested_by,
            "request_reason": req.reason,
            "waited_s": (ctx.now - req.requested_ns) / 1e9,
        }
        blocked = check(ctx, sym, manual=True)
        if blocked is None:
            request_retrain(ctx, sym, MANUAL, details, manual=True)
        elif req.event_id == ctx.event.event_id:
            reason, extra = blocked
            ctx.emit(Suppressed, req.symbol, reason, MANUAL, {**details, "deferred": True, **extra})


__all__ = ["MANUAL", "drain", "on_request"]
