"""Prometheus metrics of the service (own registry, so tests and several services don't clash)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
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

    def watch_models(self, state: Any, now_ns: Any = None) -> None:
        """Expose the model-quality figures the dashboard folds from the log (a
        `autoopt.service.dashboard_state.DashboardState`) on /metrics."""
        self.registry.register(_ModelCollector(state, now_ns or time.time_ns))

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


class _ModelCollector(Collector):
    """Model quality from the log, per symbol: live vs expected Sharpe, model age, drift
    statistics, refusal streaks; dead letters per stream; the last training's duration per
    (symbol, model); releases, refusals and trainings by outcome. Read at scrape time from the
    dashboard's projection, so every instance reports the same figures."""

    def __init__(self, state: Any, now_ns: Any) -> None:
        self.state = state
        self.now_ns = now_ns

    def collect(self) -> Iterator[Any]:
        st = self.state
        now = self.now_ns()
        live = GaugeMetricFamily("autoopt_model_live_sharpe",
                                 "Latest live Sharpe reported for the champion", labels=["symbol"])
        expected = GaugeMetricFamily("autoopt_model_expected_sharpe",
                                     "Sharpe the gate measured for the champion (out of sample)",
                                     labels=["symbol"])
        age = GaugeMetricFamily("autoopt_model_age_seconds",
                                "Seconds since the champion took over", labels=["symbol"])
        streak = GaugeMetricFamily("autoopt_refusal_streak",
                                   "Challengers refused in a row", labels=["symbol"])
        drift = GaugeMetricFamily("autoopt_drift_statistic", "Latest drift reading of the symbol",
                                  labels=["symbol", "statistic", "stream"])
        drift_thr = GaugeMetricFamily("autoopt_drift_threshold", "Its threshold",
                                      labels=["symbol", "statistic", "stream"])
        drifted = GaugeMetricFamily("autoopt_drifted", "1 when the latest reading drifted",
                                    labels=["symbol"])
        for c in st.champions.values():
            s = c.symbol
            for fam, value in ((live, c.live.get("sharpe")), (expected, c.expected.get("sharpe"))):
                if value is not None and math.isfinite(value):
                    fam.add_metric([s], float(value))
            age.add_metric([s], max(0.0, (now - c.since_ns) / 1e9))
            streak.add_metric([s], float(c.refusal_streak))
            if c.drift is not None:
                d = c.drift
                drift.add_metric([s, d.statistic, d.stream], d.value)
                drift_thr.add_metric([s, d.statistic, d.stream], d.threshold)
                drifted.add_metric([s], 1.0 if d.drifted else 0.0)
        yield from (live, expected, age, streak, drift, drift_thr, drifted)
        letters = CounterMetricFamily("autoopt_dead_letters", "Dead letters in the log by origin",
                                      labels=["stream"])
        for stream, n in st.dead_letters.items():
            letters.add_metric([stream], n)
        yield letters
        dur = GaugeMetricFamily("autoopt_training_last_duration_seconds",
                                "Wall time of the last training job", labels=["symbol", "model"])
        for (sym, model), secs in st.durations.items():
            dur.add_metric([sym, model], secs)
        yield dur
        running = GaugeMetricFamily("autoopt_jobs_running", "Training jobs running (from the log)")
        running.add_metric([], float(len(st.jobs)))
        yield running
        outcomes = CounterMetricFamily("autoopt_gate_outcomes", "Verdicts in the log",
                                       labels=["outcome"])
        outcomes.add_metric(["released"], st.n_releases)
        outcomes.add_metric(["refused"], st.n_refusals)
        yield outcomes
        trainings = CounterMetricFamily("autoopt_trainings", "Training jobs finished in the log",
                                        labels=["outcome"])
        for k, v in st.trainings.items():
            trainings.add_metric([k], v)
        yield trainings
