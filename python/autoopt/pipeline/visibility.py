"""What a retrain records for people to look at, beside what it decides: the out-of-sample
evidence behind each verdict (`RetrainEvaluated`) and how far each job has come (`JobProgress`).

Why apart from the pipeline's decisions: neither event changes a decision, so neither may stop
one. A failed append is logged and the retrain goes on (the report then lacks its curves, the
dashboard its progress bar); both go to SYSTEM, which the decision core does not read.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import numpy as np

from autoopt.clock import Clock
from autoopt.events import JobProgress, RetrainEvaluated, ValidationVerdict
from autoopt.ids import derived_event_id

if TYPE_CHECKING:
    from autoopt.log import EventLog
    from autoopt.pipeline.candidate import Candidate
    from autoopt.plugins.interfaces import ValidationResult

log = logging.getLogger(__name__)


def oos_times(cand: Candidate, n: int) -> np.ndarray:
    """The bar times of the concatenated out-of-sample path (the folds' test rows in order);
    positions ``0..n-1`` when a validator's path does not follow the folds."""
    ts = np.asarray(cand.selected.ts, dtype=np.int64)
    try:
        t = np.concatenate([ts[np.asarray(test)] for _, test in cand.task.folds])
    except (IndexError, ValueError):
        return np.arange(n, dtype=np.int64)
    return t if t.size == n else np.arange(n, dtype=np.int64)


async def record_evaluation(
    event_log: EventLog, verdict: ValidationVerdict, cand: Candidate,
    champion: ValidationResult | None, *, run_id: str, scope: str, model: str,
) -> None:
    """Append the `RetrainEvaluated` of ``verdict`` (id derived from the run and job, so a rerun
    stores it once); a failure is logged, never raised."""
    try:
        returns = np.asarray(cand.validation.returns, dtype=np.float64)
        champ = None
        if champion is not None and np.asarray(champion.returns).size == returns.size:
            champ = np.asarray(champion.returns, dtype=np.float64)
        event = RetrainEvaluated.of_paths(
            event_id=derived_event_id(run_id, f"{scope}/system.evaluation"),
            ts_event=verdict.ts_event, causation_id=verdict.event_id,
            correlation_id=verdict.correlation_id,
            symbol=verdict.symbol, run_id=run_id, model=model, challenger=verdict.challenger,
            verdict_id=verdict.event_id, champion=verdict.champion,
            fold_metrics=[dict(f) for f in cand.validation.fold_metrics],
            champion_fold_metrics=[dict(f) for f in champion.fold_metrics] if champion else [],
            ts=oos_times(cand, returns.size), returns=returns, champion_returns=champ,
            periods_per_year=float(cand.task.periods_per_year),
        )
        await event_log.append(event)
    except Exception as exc:  # visibility never stops a retrain
        log.warning("retrain %s %s: evaluation not recorded: %s", verdict.symbol, model, exc)


class ProgressEvents:
    """Publishes a job's `JobProgress` from any thread without waiting for the log; `drain`
    waits for what is in flight. Ids derive from (run, job, step), so a retried run dedups."""

    def __init__(self, event_log: EventLog, clock: Clock, *, run_id: str, symbol: str,
                 model: str, correlation_id: str | None) -> None:
        self._log = event_log
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._fields: dict[str, Any] = {"job": run_id, "symbol": symbol, "model": model}
        self._correlation_id = correlation_id
        self._pending: list[Future[Any]] = []

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = self._clock.now_ns()
        f = self._fields
        event = JobProgress(
            event_id=derived_event_id(f["job"], f"{f['symbol']}/{f['model']}/progress/{done}/{stage}"),
            ts_event=now, ts_init=now, correlation_id=self._correlation_id, stage=stage,
            done=max(0, done), total=max(0, total), finished=stage == "done", **f,
        )
        self._pending = [p for p in self._pending if not p.done()]
        self._pending.append(asyncio.run_coroutine_threadsafe(self._send(event), self._loop))

    async def _send(self, event: JobProgress) -> None:
        try:
            await self._log.append(event)
        except Exception as exc:
            log.debug("progress not recorded: %s", exc)

    async def drain(self) -> None:
        pending, self._pending = self._pending, []
        for fut in pending:
            await asyncio.wrap_future(fut)


__all__ = ["ProgressEvents", "oos_times", "record_evaluation"]
