"""Runs the retrains the core decided, each exactly once across all service instances.

Jobs come from `DecisionMade` events of kind ``retrain`` through one durable pull consumer
shared by every instance (a work queue): JetStream hands each decision to one instance, the
message is kept "in progress" while the retrain runs, and it is acked when the results are in
the log. If the instance dies (SIGKILL), the unacked decision is redelivered after
``ack_wait``; the rerun derives every event id from the decision, so what the first attempt
already appended dedups, and a decision whose verdict is already in the log is not run again.

A job that fails never ends the service: each failed attempt leaves an `ErrorRaised` with its
reason in the log, and the last allowed attempt a failed `TrainingFinished` per model (unless
the pipeline recorded its own), before the consumer dead-letters the decision.

A redelivery never runs while the first attempt is alive: each job holds a lease in the KV
bucket ``autoopt_jobs`` (`autoopt.service.lease`); an instance handed a job whose lease is
held waits (the message stays in progress) until the owner finishes, releases it, or is gone.
If the bucket cannot be reached, jobs run as without leases (warned): the event ids still
dedup the results, only the compute may be done twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from autoopt.config import Config
from autoopt.events import DecisionMade, ErrorRaised, Event, TrainingFinished
from autoopt.ids import derived_event_id
from autoopt.log import Delivery, EventLog
from autoopt.pipeline.release import read_history, step_id
from autoopt.pipeline.retrain import run_retrain
from autoopt.plugins import Plugins
from autoopt.registry import open_registry
from autoopt.service.lease import Claim, JobLeases
from autoopt.service.metrics import ServiceMetrics
from autoopt.subjects import subject_filter_for_type

log = logging.getLogger(__name__)

JOB_SUBJECT = subject_filter_for_type(DecisionMade)


class JobRunner:
    def __init__(
        self,
        event_log: EventLog,
        config: Config,
        plugins: Plugins,
        metrics: ServiceMetrics,
        *,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._log = event_log
        self._config = config
        self._plugins = plugins
        self._metrics = metrics
        self._registry = open_registry(config)
        self._now_ns = now_ns
        self.completed: list[str] = []
        self.gave_up: list[str] = []
        """Decisions whose last allowed attempt failed (they are dead-lettered with the error)."""
        self.in_flight = 0
        self._leases: JobLeases | None = None

    @property
    def lease_ttl_s(self) -> float:
        svc = self._config.service
        return svc.job_lease_s or max(60.0, 3 * svc.ack_wait_s)

    async def _open_leases(self) -> JobLeases | None:
        if self._leases is None:
            try:
                self._leases = await JobLeases.open(self._log, ttl_s=self.lease_ttl_s, now_ns=self._now_ns)
            except Exception as exc:
                log.warning("job leases unavailable (%s): a redelivered job may run twice at once",
                            exc)
        return self._leases

    async def _claim(self, event: DecisionMade, delivery: Delivery) -> tuple[Claim, int]:
        leases = await self._open_leases()
        if leases is None:
            return "unguarded", 0
        try:
            return await leases.claim(event.event_id, delivery.num_delivered,
                                      lambda: self._already_done(event))
        except Exception as exc:
            log.warning("job lease of %s unavailable (%s): running it unguarded", event.event_id, exc)
            await leases.close()  # the next job opens (or recreates) the bucket afresh
            self._leases = None
            return "unguarded", 0

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self._consume(stop)
        finally:
            if self._leases is not None:
                await self._leases.close()
                self._leases = None

    async def _consume(self, stop: asyncio.Event) -> None:
        svc = self._config.service
        await self._log.consume(
            svc.durable,
            JOB_SUBJECT,
            self.handle,
            stop=stop,
            ack_wait=svc.ack_wait_s,
            max_deliver=svc.max_deliver,
            batch=1,
            poll_s=0.5,
        )

    async def _already_done(self, decision: DecisionMade) -> bool:
        """True when an earlier attempt of this decision finished every model: its verdict
        refused, or passed and its release was promoted (a passing verdict is a promise to
        release, so a kill after it leaves the job undone and the rerun completes the release).

        The pipeline derives its run id from the decision, each verdict id from (run id,
        symbol/model/step) and each release step's id from its verdict (`step_id`).
        """
        run_id = derived_event_id(decision.event_id, "retrain")
        history = await read_history(self._log, decision.symbol)
        for model in self._config.pipeline.models:
            verdict = history.verdicts.get(
                derived_event_id(run_id, f"{decision.symbol}/{model}/model.verdict"))
            if verdict is None:
                return False
            if verdict.passed and not {step_id(verdict, "model.promoted"),
                                       step_id(verdict, "model.canary")} & history.ids:
                return False
        return True

    async def _record_failure(
        self, decision: DecisionMade, delivery: Delivery, exc: Exception, last: bool
    ) -> None:
        """Put a failed attempt's reason in the log (ids derived from the decision and the
        attempt, so a retried report is stored once); a failure to record is only logged,
        the job's own error is what the consumer acts on."""
        reason = f"{type(exc).__name__}: {exc}"
        attempt = delivery.num_delivered
        log.error(
            "retrain of %s failed (attempt %d of %d): %s", decision.symbol, attempt,
            self._config.service.max_deliver, reason, extra={"event_id": decision.event_id},
        )
        now = self._now_ns()
        events: list[Event] = [
            ErrorRaised.new(
                cause=decision, step=f"job.error/{attempt}", ts_event=now, ts_init=now,
                component="jobs", error_type=type(exc).__name__, message=str(exc),
                details={"decision": decision.event_id, "symbol": decision.symbol,
                         "attempt": attempt, "last_attempt": last},
            )
        ]
        if last:
            run_id = derived_event_id(decision.event_id, "retrain")
            events += [
                TrainingFinished.new(
                    cause=decision, ts_event=now, ts_init=now, symbol=decision.symbol,
                    run_id=run_id, trainer=model, succeeded=False, error=reason,
                    event_id=derived_event_id(run_id, f"{decision.symbol}/{model}/training.finished"),
                )
                for model in self._config.pipeline.models
            ]
        for item in events:
            try:
                await self._log.append(item)
            except Exception as append_exc:
                log.warning("could not record the failure of %s: %s", decision.event_id, append_exc)

    async def handle(self, event: Event, delivery: Delivery) -> None:
        if not isinstance(event, DecisionMade) or event.kind != "retrain":
            return
        age_s = (self._now_ns() - event.ts_event) / 1e9
        limit = self._config.service.max_job_age_s
        if limit and age_s > limit:
            log.warning(
                "skipping retrain of %s decided %.0fs ago (max_job_age_s=%.0f)", event.symbol, age_s, limit,
                extra={"event_id": event.event_id},
            )
            self._metrics.retrain_jobs.labels("skipped_stale").inc()
            return
        if delivery.num_delivered > 1 and await self._already_done(event):
            log.info("retrain %s already completed by an earlier attempt", event.event_id)
            self._metrics.retrain_jobs.labels("already_done").inc()
            return
        claim, revision = await self._claim(event, delivery)
        if claim == "done":
            log.info("retrain %s already completed by another attempt", event.event_id)
            self._metrics.retrain_jobs.labels("already_done").inc()
            return
        leases = self._leases if claim == "owned" else None
        beat = (asyncio.create_task(leases.heartbeat(event.event_id, delivery.num_delivered, revision))
                if leases is not None else None)
        finished = False
        try:
            await self._run(event, delivery)
            finished = True
        finally:
            if beat is not None:
                beat.cancel()
            if leases is not None:
                await leases.finish(event.event_id, delivery.num_delivered, done=finished)

    async def _run(self, event: DecisionMade, delivery: Delivery) -> None:
        self._metrics.jobs_in_flight.inc()
        self.in_flight += 1
        t0 = time.perf_counter()
        log.info("retrain of %s started (attempt %d)", event.symbol, delivery.num_delivered,
                 extra={"event_id": event.event_id, "correlation_id": event.correlation_id})
        try:
            summary = await run_retrain(
                self._config,
                source=self._config.service.source,
                event_log=self._log,
                symbols=[event.symbol],
                plugins=self._plugins,
                registry=self._registry,
                cause=event,
            )
        except Exception as exc:
            self._metrics.retrain_jobs.labels("failed").inc()
            last = delivery.num_delivered >= self._config.service.max_deliver
            if last:
                self.gave_up.append(event.event_id)
            await self._record_failure(event, delivery, exc, last)
            raise
        finally:
            self._metrics.jobs_in_flight.dec()
            self.in_flight -= 1
            self._metrics.retrain_duration.observe(time.perf_counter() - t0)
        for result in summary.results:
            self._metrics.gate_verdicts.labels(str(bool(result.deployed)).lower()).inc()
        self._metrics.retrain_jobs.labels("done").inc()
        from autoopt.strategy.service import maybe_retune  # [risk] retune = "with_retrain"

        await maybe_retune(self._config, self._plugins, self._registry, self._log, event)
        self.completed.append(event.event_id)
        log.info(
            "retrain of %s done: %s", event.symbol,
            ", ".join(f"{r.model} deployed={r.deployed}" for r in summary.results),
            extra={"event_id": event.event_id, "correlation_id": event.correlation_id},
        )
