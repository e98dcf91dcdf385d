"""Schedule policy: retrain when the core's clock crosses a cron instant (UTC).

Crossing, precisely: each symbol keeps ``sched_next_ns``, the first instant of its cron expression
strictly after the moment it was last checked (when it was registered, or when it last fired).
An event at clock ``now`` fires the schedule iff ``sched_next_ns <= now``, i.e. an instant lies in
(last check, now]. Several instants crossed at once (a quiet log) fire once; ``details`` give the
first (``instant``) and last (``latest``) crossed. The clock only moves with events, so a schedule
fires on the first event at or after its instant; on time, because `autoopt serve` records a
`autoopt.events.ClockTick` at every wall-clock minute (`autoopt.service.ticker`), which moves the
clock to that minute exactly, so the nightly 03:00 retrain fires at the 03:00 tick on a quiet log,
and a replay of the same log fires it at the same tick. A changed expression (another config)
recomputes the next instant from the previous clock.
"""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter

from autoopt.clock import NS_PER_S
from autoopt.core.context import Ctx
from autoopt.core.policies.guards import request_retrain
from autoopt.errors import ConfigError


def _next_after(expr: str, t_ns: int) -> int:
    """First instant of ``expr`` strictly after ``t_ns``."""
    start = datetime.fromtimestamp(t_ns // NS_PER_S, tz=UTC)
    try:
        it = croniter(expr, start)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"schedule {expr!r} is not a valid cron expression: {exc}") from exc
    return int(it.get_next(float)) * NS_PER_S


def _latest_at_or_before(expr: str, t_ns: int) -> int:
    start = datetime.fromtimestamp(t_ns // NS_PER_S + 1, tz=UTC)
    return int(croniter(expr, start).get_prev(float)) * NS_PER_S


def check_schedules(ctx: Ctx) -> None:
    """Fire every symbol whose next cron instant the clock has reached (symbols sorted)."""
    now = ctx.now
    data = ctx.data
    key = ctx.resolved.sched_key
    if data.sched_key == key and (data.sched_min_ns is None or now < data.sched_min_ns):
        return  # no instant reached by any symbol: skip the per-symbol pass
    for name in sorted(data.symbols):
        sym = data.symbols[name]
        expr = ctx.eff(name).schedule
        if expr != sym.sched_expr:
            sym.sched_expr = expr
            anchor = max(sym.registered_ns, ctx.prev_clock) if sym.registered_ns < now else now
            sym.sched_next_ns = _next_after(expr, anchor) if expr is not None else None
        nxt = sym.sched_next_ns
        if nxt is None or nxt > now:
            continue
        assert expr is not None
        details = {"cron": expr, "instant_ns": nxt, "latest_ns": _latest_at_or_before(expr, now)}
        sym.sched_next_ns = _next_after(expr, now)
        request_retrain(ctx, sym, "schedule", details)
    pending = [s.sched_next_ns for s in data.symbols.values() if s.sched_next_ns is not None]
    data.sched_key = key
    data.sched_min_ns = min(pending) if pending else None


__all__ = ["check_schedules"]
