"""Three `autoopt serve` instances (separate data dirs, like three hosts) on the 3-node loopback
cluster, registry and studies on NATS: the instance running a retrain and one NATS node are
killed mid-retrain; the job is finished by another instance, and every decision, verdict and
release is recorded once; each instance's /metrics shows its share of the jobs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from autoopt.config import Config, load_config
from autoopt.events import (
    DecisionMade,
    Event,
    ModelPromoted,
    ModelReleased,
    RetrainRequested,
    TrainingStarted,
    TrialCompleted,
    ValidationVerdict,
)
from autoopt.pipeline.retrain import load_bars
from autoopt.registry import open_registry
from autoopt.runtime import open_event_log, open_plugins
from autoopt.subjects import subject_filter_for_type
from autoopt.testing.cluster import NatsCluster, free_ports

CONFIG = """
symbols = ["GOOG"]
[nats]
replicas = 3
request_timeout_s = 10.0
connect_timeout_s = 20.0
reconnect_wait_s = 0.2
max_reconnect_attempts = -1
[registry]
backend = "nats"
[pipeline]
models = ["lgbm"]
trials = 8
threads = 1
pruning = false
optuna_storage = "nats"
[pipeline.gate]
margin = 0.0
dsr_threshold = 0.0
min_trades = 0
max_pbo = 1.0
holdout_min_sharpe = -inf
[policy]
schedule = "off"
cooldown_s = 0
max_concurrent = 2
[service]
ack_wait_s = 15
http_port = 0
max_job_age_s = 0
checkpoint_every = 5
"""


class Host:
    """One instance: its own data dir and /metrics port, the cluster's URLs."""

    def __init__(self, root: Path, name: str, urls: list[str]) -> None:
        self.name = name
        self.data = root / name
        self.data.mkdir(parents=True)
        self.port = free_ports(1)[0]
        self.log = root / f"{name}.log"
        (root / "autoopt.toml").write_text(CONFIG)
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("AUTOOPT_")},
                    "AUTOOPT_CONFIG": str(root / "autoopt.toml"),
                    "AUTOOPT_DATA_DIR": str(self.data), "AUTOOPT_NATS_URL": ",".join(urls),
                    "AUTOOPT_SERVICE__HTTP_PORT": str(self.port), "AUTOOPT_DEBUG": "1"}
        self.proc: subprocess.Popen[str] | None = None

    def config(self) -> Config:
        return load_config(environ=self.env)

    def serve(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "autoopt", "serve"], env=self.env,
                                     stdout=self.log.open("w"), stderr=subprocess.STDOUT,
                                     text=True)

    def text(self) -> str:
        return self.log.read_text()

    def jobs(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            body = r.read().decode()
        out: dict[str, float] = {}
        for fam in text_string_to_metric_families(body):
            if fam.name == "autoopt_retrain_jobs":
                for s in fam.samples:
                    if s.name.endswith("_total"):
                        out[s.labels["outcome"]] = s.value
        return out


async def _ready(h: Host, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert h.proc is not None and h.proc.poll() is None, h.text()[-2000:]
        try:
            h.jobs()
            return
        except OSError:
            await asyncio.sleep(0.3)
    raise AssertionError(f"{h.name} not serving within {timeout}s:\n{h.text()[-2000:]}")


async def _events(config: Config, cls: type[Event]) -> list[Event]:
    log = await open_event_log(config)
    try:
        return [e async for e in log.replay(subject_filter_for_type(cls))]
    finally:
        await log.close()


async def _wait(config: Config, cls: type[Event], hosts: list[Host], n: int = 1,
                timeout: float = 240.0) -> list[Event]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await _events(config, cls)
        if len(found) >= n:
            return found
        await asyncio.sleep(0.5)
    logs = "\n".join(f"--- {h.name}\n{h.text()[-2500:]}" for h in hosts)
    raise AssertionError(f"no {n} x {cls.__name__} within {timeout}s\n{logs}")


async def test_three_instances_one_killed_with_a_nats_node_do_everything_once(
        nats_cluster: NatsCluster, tmp_path: Path) -> None:
    hosts = [Host(tmp_path, name, nats_cluster.urls) for name in ("h1", "h2", "h3")]
    config = hosts[0].config()
    log = await open_event_log(config)
    try:
        source = open_plugins(config).data_source_for("bundled:GOOG")
        await load_bars(source, "bundled:GOOG", ["GOOG"], log, batch_rows=1000)
    finally:
        await log.close()
    try:
        for h in hosts:
            h.serve()
        for h in hosts:  # all three up (their /metrics answers) before the request
            await _ready(h)
        log = await open_event_log(config)
        try:
            await log.append(RetrainRequested.new(symbol="GOOG", reason="manual",
                                                  requested_by="test"))
        finally:
            await log.close()
        await _wait(config, TrialCompleted, hosts)
        runner = next(h for h in hosts if "retrain of GOOG started" in h.text())
        assert runner.proc is not None
        runner.proc.send_signal(signal.SIGKILL)
        runner.proc.wait(30)
        nats_cluster.kill("n3")  # a NATS node dies too; clients fail over to n1/n2
        await _wait(config, ValidationVerdict, hosts)
        await _wait(config, ModelPromoted, hosts)
        await asyncio.sleep(16)  # past ack_wait: a duplicate run would have started by now
        survivors = [h for h in hosts if h is not runner]
        finisher = [h for h in survivors if "retrain of GOOG done" in h.text()]
        assert len(finisher) == 1, [h.text()[-1500:] for h in survivors]
        shares = {h.name: h.jobs().get("done", 0.0) for h in survivors}
        assert sorted(shares.values()) == [0.0, 1.0]  # each /metrics shows its own share
        decisions = [d for d in await _events(config, DecisionMade) if d.kind == "retrain"]
        assert len(decisions) == 1  # decided by three cores, stored once
        assert len(await _events(config, TrainingStarted)) == 1
        verdicts = await _events(config, ValidationVerdict)
        released = await _events(config, ModelReleased)
        assert len(verdicts) == 1 and verdicts[0].passed
        assert len(released) == 1 and released[0].uri.startswith("nats-obj://autoopt-models/GOOG/")
        # the release is current on every host: read from the store by a fresh data dir
        reader = open_registry(survivors[0].config())
        try:
            assert reader.current("GOOG") == released[0].release_id
            manifest, _ = reader.load("GOOG", recorded=None)
            assert manifest.sha256 == released[0].sha256
        finally:
            reader.close()
    finally:
        for h in hosts:
            if h.proc is not None and h.proc.poll() is None:
                h.proc.kill()
                h.proc.wait(30)
