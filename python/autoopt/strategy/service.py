"""The service re-tunes strategy params when it retrains (``[risk] retune = "with_retrain"``).

Why after a retrain: the retrain is where the service's policies already decide *when* to look
at the data again — on its schedule, on performance degradation, on drift or on request
(``[policy]``) — and a new model changes the probabilities the thresholds and stops act on.
So the same trigger re-tunes the params on the bars the retrain just stored in the log, with
the same nested walk-forward, gate and release as ``autoopt tune-risk --release``. The release
and its ledger rows derive their ids from the retrain decision, so a redelivered job records
them once. A refusal is logged with its reasons and changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from autoopt.errors import DataError

log = logging.getLogger(__name__)


async def retune_after_retrain(config: Any, plugins: Any, registry: Any, event_log: Any,
                               symbol: str, cause: Any) -> Any:
    """Tune, gate and (if passed) release ``symbol``'s params; returns the `SymbolOutcome`
    (None when this decision already released params: a redelivered job)."""
    from autoopt.events import RiskParamsUpdated
    from autoopt.pipeline.dataset import validation_policy
    from autoopt.pipeline.ingest import stored_bars
    from autoopt.strategy.run import settings_of, tune_symbol
    from autoopt.subjects import subject_filter_for_type

    async for done in event_log.replay(subject_filter_for_type(RiskParamsUpdated, symbol)):
        if done.causation_id == cause.event_id:  # a redelivered job: released already
            log.info("%s params already re-tuned for %s", symbol, cause.event_id)
            return None
    bars = await stored_bars(event_log, symbol, None,
                             validation_policy(config.pipeline.data_policy))
    if bars is None:
        raise DataError(f"{symbol}: no stored bars to re-tune strategy params on")
    out = await tune_symbol(config, plugins, symbol, bars, registry=registry, event_log=event_log,
                            settings=settings_of(config), release=True,
                            run_id=f"retune-{cause.event_id}", cause=cause)
    log.info("re-tuned %s strategy params: %s%s", symbol,
             "released " + out.release_id if out.release_id else "refused",
             "" if out.verdict.passed else " (" + "; ".join(
                 r.code for r in out.verdict.failures) + ")",
             extra={"event_id": cause.event_id})
    return out



async def maybe_retune(config: Any, plugins: Any, registry: Any, event_log: Any,
                       decision: Any) -> Any:
    """The service's hook after a completed retrain job: re-tune when configured. A failure is
    recorded as an `ErrorRaised` (component ``risk-retune``) and never fails the retrain job."""
    if getattr(config.risk, "retune", "off") != "with_retrain":
        return None
    try:
        return await retune_after_retrain(config, plugins, registry, event_log, decision.symbol,
                                          decision)
    except Exception as exc:
        from autoopt.events import ErrorRaised

        log.error("re-tuning %s failed: %s", decision.symbol, exc)
        try:
            await event_log.append(ErrorRaised.new(
                component="risk-retune", error_type=type(exc).__name__, message=str(exc),
                details={"symbol": decision.symbol}, cause=decision, step="risk-retune-error"))
        except Exception as append_exc:
            log.warning("could not record the re-tune failure: %s", append_exc)
        return None


__all__ = ["maybe_retune", "retune_after_retrain"]
