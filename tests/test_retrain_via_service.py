"""``autoopt retrain --via-service``: a real service (in this process) on a real nats-server with
planted-edge bars in the log; the command (a separate process) appends a request with its own
reason and follows it to the verdict; the decision records the reason."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from autoopt.config import load_config
from autoopt.events import DecisionMade, ValidationVerdict
from autoopt.log import EventLog
from autoopt.pipeline.ingest import ingest_bars
from autoopt.plugins import load_plugins
from autoopt.service.app import Service
from autoopt.synthetic import planted_bars


async def test_retrain_via_service_follows_the_request_to_its_verdict(
        event_log: EventLog, nats_server: str, tmp_path: Path) -> None:
    cfg_path = tmp_path / "autoopt.toml"
    cfg_path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[nats]\nurls = ["{nats_server}"]\n'
        "[service]\nhttp_port = 0\ntick_interval_s = 0\n"
        "[pipeline]\ntrials = 2\npruning = false\n"
        "[pipeline.gate]\nmargin = 0.0\ndsr_threshold = 0.0\nmin_trades = 0\n"
        "[policy]\nschedule = \"\"\n"
    )
    config = load_config(cfg_path, environ={})
    await ingest_bars(event_log, "EDGE", "1h", planted_bars(3, "hourly", 0.7, n=900))
    service = Service(config, event_log, load_plugins())
    served = asyncio.create_task(service.run())
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "autoopt.cli", "--config", str(cfg_path), "retrain",
            "--via-service", "--symbols", "EDGE", "--reason", "desk: fills look off",
            "--timeout", "240", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 300)
        text = out.decode()
        assert proc.returncode == 0, text
        for needle in ("requested: retrain EDGE", "decided: retrain EDGE", "trial 0",
                       "verdict lgbm: passed", "champion now",
                       "EDGE lgbm: ", "6/6"):  # the bar drawn from the service's JobProgress
            assert needle in text, text
        (decision,) = [e async for e in event_log.replay("DECISIONS")
                       if isinstance(e, DecisionMade) and e.kind == "retrain"]
        assert decision.details["request_reason"] == "desk: fills look off"
        assert [e.passed async for e in event_log.replay("MODELS")
                if isinstance(e, ValidationVerdict)] == [True]
        bad = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "autoopt.cli", "--config", str(cfg_path), "retrain",
            "--via-service", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(bad.communicate(), 60)
        assert bad.returncode == 2 and "--via-service needs --symbols" in out.decode()
    finally:
        service.stop.set()
        await asyncio.wait_for(served, 60)
