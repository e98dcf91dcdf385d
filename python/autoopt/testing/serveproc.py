"""`autoopt serve` as a supervised child process, as an operator would run it.

Why a process and not the `Service` object in the caller's event loop: a fault drill must
count *process* restarts (systemd's ``Restart=always`` would hide a crash; this counts it) and
must not share an event loop, or a CPU-bound producer, with the service it measures. What the
service knows about itself (its CORE position, its internal component restarts) is read where
an operator reads it: ``/metrics`` and ``/readyz`` on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from autoopt.testing.cluster import free_ports

CONFIG = """\
symbols = ["GOOG"]
[nats]
replicas = {replicas}
request_timeout_s = 3.0
connect_timeout_s = 3.0
reconnect_wait_s = 0.2
max_reconnect_attempts = -1
[policy]
schedule = "off"
cooldown_s = 0
max_concurrent = 1000000
[service]
http_host = "127.0.0.1"
ack_wait_s = 5
max_job_age_s = 0.001
checkpoint_every = 500
"""
"""The drill's service: no schedules, no concurrency limit (every manual request is decided
at once) and every retrain job skipped as stale (the drill measures the log and the core,
not model training)."""


class ServiceProcess:
    """One `autoopt serve` child on ``urls``; `watch` restarts it if it ever exits on its own
    and counts that in ``restarts``."""

    def __init__(self, workdir: Path, urls: list[str], *, replicas: int) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_ports(1)[0]
        self.config_path = workdir / "autoopt.toml"
        self.config_path.write_text(CONFIG.format(replicas=replicas))
        self.log_path = workdir / "serve.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOOPT_")}
        self.env = {
            **env,
            "AUTOOPT_CONFIG": str(self.config_path),
            "AUTOOPT_DATA_DIR": str(workdir / "data"),
            "AUTOOPT_NATS_URL": ",".join(urls),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.exit_codes: list[int] = []
        self._stopping = False

    def start(self) -> None:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "autoopt.cli", "serve", "--port", str(self.port)],
                env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )

    async def watch(self, poll_s: float = 0.25) -> None:
        """Until `stop`: an exit nobody asked for is counted and the process started again."""
        while not self._stopping:
            proc = self.proc
            if proc is not None and proc.poll() is not None and not self._stopping:
                self.exit_codes.append(int(proc.returncode))
                self.restarts += 1
                self.start()
            await asyncio.sleep(poll_s)

    def _get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2.0) as resp:  # noqa: S310 - loopback
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")
        except OSError:
            return 0, ""

    async def ready(self) -> bool:
        return (await asyncio.to_thread(self._get, "/readyz"))[0] == 200

    async def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not await self.ready():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"autoopt serve exited {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"autoopt serve not ready within {timeout}s:\n{self.tail()}")
            await asyncio.sleep(0.2)

    async def metrics(self) -> dict[str, float]:
        """``/metrics`` samples as ``name{label=value,...}`` -> value ({} when unreachable)."""
        status, text = await asyncio.to_thread(self._get, "/metrics")
        if status != 200:
            return {}
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return out

    async def core_position(self) -> int:
        """The last CORE sequence the decider completed (-1 when /metrics does not answer)."""
        return int((await self.metrics()).get("autoopt_core_sequence", -1))

    async def component_restarts(self) -> int:
        """Internal restarts of the decider / job runner / router since this process started."""
        values = await self.metrics()
        return int(sum(v for k, v in values.items() if k.startswith("autoopt_component_restarts_total")))

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (drain), then SIGKILL after ``timeout``; the exit code (None: never ran)."""
        self._stopping = True
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        return proc.returncode

    def tail(self, n: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


__all__ = ["CONFIG", "ServiceProcess"]
