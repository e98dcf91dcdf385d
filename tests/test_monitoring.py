"""docker/ monitoring: every metric the Grafana dashboard and the Prometheus alert rules use is
one the service exposes (scraped from a real registry fed by real events), the provisioning
points Grafana at the dashboard and Prometheus, and the compose profile starts both."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import generate_latest

from autoopt.events import (
    DeadLettered,
    DriftReported,
    MetricsReported,
    ModelPromoted,
    ModelReleased,
    TrainingFinished,
    ValidationVerdict,
)
from autoopt.service.dashboard_state import DashboardState
from autoopt.service.metrics import ServiceMetrics

DOCKER = Path(__file__).resolve().parents[1] / "docker"
_NAME = re.compile(r"\bautoopt_[a-z_]+")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def _exposed() -> tuple[set[str], str]:
    state = DashboardState()
    t = 1_700_000_000 * 10**9
    for e in [
        ValidationVerdict.new(symbol="GOOG", challenger="r1", passed=True,
                              metrics={"sharpe": 1.2}),
        ModelReleased.new(symbol="GOOG", release_id="r1", model_type="lgbm", sha256="0" * 64,
                          uri="file:///x", metrics={"sharpe": 1.2}),
        ModelPromoted.new(symbol="GOOG", release_id="r1"),
        MetricsReported.new(symbol="GOOG", window="1d", metrics={"sharpe": 0.4},
                            release_id="r1"),
        DriftReported.new(symbol="GOOG", stream="features", statistic="psi", value=0.3,
                          threshold=0.2, drifted=True),
        DeadLettered.new(stream="SIGNALS", subject="s", seq=1, consumer="c", error="e",
                         payload=b""),
        TrainingFinished.new(symbol="GOOG", run_id="run", trainer="lgbm", succeeded=True,
                             duration_s=12.0),
    ]:
        state.apply(e, t)
    metrics = ServiceMetrics()
    metrics.watch_models(state, lambda: t + 3600 * 10**9)
    metrics.retrain_duration.observe(3.0)
    metrics.decisions.labels("retrain", "schedule").inc()
    metrics.restarts.labels("jobs").inc()
    text = generate_latest(metrics.registry).decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
             if line and not line.startswith("#")}
    return names, text


def _base(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _used() -> set[str]:
    dash = json.loads((DOCKER / "grafana/dashboards/autoopt.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DOCKER / "autoopt-alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    return {m for e in exprs for m in _NAME.findall(e)}


def test_dashboard_and_alert_rules_use_exposed_metrics() -> None:
    exposed, text = _exposed()
    bases = {_base(n) for n in exposed}
    used = _used()
    assert len(used) >= 10
    missing = {u for u in used if u not in exposed and _base(u) not in bases}
    assert not missing, f"not on /metrics: {sorted(missing)}"
    assert 'autoopt_model_age_seconds{symbol="GOOG"} 3600.0' in text
    assert 'autoopt_model_live_sharpe{symbol="GOOG"} 0.4' in text
    assert 'autoopt_model_expected_sharpe{symbol="GOOG"} 1.2' in text
    assert 'autoopt_dead_letters_total{stream="SIGNALS"} 1.0' in text


def test_monitoring_profile_is_provisioned() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text().replace("${", "$${"))
    services = compose["services"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    mounts = " ".join(services["grafana"]["volumes"] + services["prometheus"]["volumes"])
    assert "./grafana/provisioning" in mounts and "./autoopt-alerts.yml" in mounts
    prom = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    assert prom["rule_files"] == ["/etc/prometheus/autoopt-alerts.yml"]
    source = yaml.safe_load((DOCKER / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    dash = json.loads((DOCKER / "grafana/dashboards/autoopt.json").read_text())
    assert {p["datasource"]["uid"] for p in dash["panels"]} == {uid}
    provider = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/autoopt.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    rules = yaml.safe_load((DOCKER / "autoopt-alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["alert"].startswith("Autoopt") and rule["labels"]["severity"]
