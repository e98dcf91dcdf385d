"""Prometheus metrics of the service (own registry, so tests and several services don't clash)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class ServiceMetrics:
    """Everything `/metrics` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_consumed = Counter(
            "autoopt_events_consumed_total", "Events fed to the decision core", ["type"], registry=r
        )
        self.consumer_lag = Gauge(
            "autoopt_consumer_lag", "Events in the CORE stream not yet decided", registry=r
        )
        self.core_seq = Gauge("autoopt_core_sequence", "Last CORE sequence decided", registry=r)
        self.decisions = Counter(
            "autoopt_decisions_total", "Decision-core outputs", ["kind", "reason"], registry=r
        )
        self.retrain_duration = Histogram(
            "autoopt_retrain_duration_seconds",
            "Wall time of retrain jobs",
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
            registry=r,
        )
        self.retrain_jobs = Counter(
            "autoopt_retrain_jobs_total", "Retrain jobs by outcome", ["outcome"], registry=r
        )
        self.gate_verdicts = Counter(
            "autoopt_gate_verdicts_total", "Release-gate verdicts", ["passed"], registry=r
        )
        self.jobs_in_flight = Gauge("autoopt_jobs_in_flight", "Retrain jobs running", registry=r)
        self.undecodable = Counter(
            "autoopt_undecodable_events_total", "CORE messages that failed to decode", registry=r
        )
        self.checkpoints = Counter("autoopt_checkpoints_total", "Checkpoints written", registry=r)
        self.restarts = Counter(
            "autoopt_component_restarts_total",
            "Service components restarted after an error (decider, jobs, ab-router)",
            ["component"],
            registry=r,
        )

    def watch_router(self, router: Any) -> None:
        """Expose an A/B router's signal counts (kept by the router itself) on /metrics."""
        self.registry.register(_RouterCollector(router))


class _RouterCollector(Collector):
    """``autoopt_ab_signals_total{outcome}``: routed to a variant, passed through unchanged
    (no running experiment, outside coverage), or unroutable (no unit key: passed through)."""

    def __init__(self, router: Any) -> None:
        self.router = router

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "autoopt_ab_signals", "Signals handled by the A/B router", labels=["outcome"]
        )
        for outcome in ("routed", "passed", "unroutable"):
            family.add_metric([outcome], getattr(self.router, outcome))
        yield family
