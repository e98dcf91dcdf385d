"""The trial ledger in the event log: read a symbol's ``training.ledger`` events, record a run's.

Why in the log: the ledger must outlive the process and the Optuna storage (past retrains,
other models, other workers all count), and the log is the one record every part of autoopt
replays. Reading is bounded by the log's own replay timeouts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from autoopt.events import TrialLedgered
from autoopt.pipeline.evidence import LedgerRow
from autoopt.subjects import subject_filter_for_type


async def read_ledger(event_log: Any, symbol: str) -> list[LedgerRow]:
    """Every configuration recorded for ``symbol``, oldest first, one row per key."""
    rows: dict[str, LedgerRow] = {}
    async for ev in event_log.replay(subject_filter_for_type(TrialLedgered, symbol)):
        if isinstance(ev, TrialLedgered) and ev.key not in rows:
            rows[ev.key] = LedgerRow(key=ev.key, source=ev.source, model=ev.model, state=ev.state,
                                     sharpe=ev.sharpe, days=list(ev.days),
                                     returns=list(ev.returns))
    return list(rows.values())


async def record_ledger(
    append: Callable[..., Awaitable[Any]], symbol: str, run_id: str, rows: Sequence[LedgerRow]
) -> None:
    """Append one ``training.ledger`` event per row through the job's ``append(cls, step, **)``
    (ids derived from the run and the row's key: a rerun records nothing twice)."""
    for r in rows:
        await append(TrialLedgered, f"ledger/{r.key}", symbol=symbol, key=r.key, source=r.source,
                     run_id=run_id, model=r.model, state=r.state, sharpe=r.sharpe,
                     days=list(r.days), returns=list(r.returns))


__all__ = ["read_ledger", "record_ledger"]
