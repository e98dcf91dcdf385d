"""Existing streams are compared with the config, never silently reconfigured: a process with
the default config (one replica) connecting to a cluster whose streams have three keeps them
at three and reports the difference."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoopt.log import EventLog, NatsSettings
from autoopt.service.core_stream import CORE_STREAM, core_stream_config, ensure_core_stream
from autoopt.subjects import STREAMS

pytestmark = pytest.mark.slow


def _settings(urls: list[str], replicas: int) -> NatsSettings:
    return NatsSettings(
        urls=urls, replicas=replicas, request_timeout_s=5.0, connect_timeout_s=5.0
    )


async def test_default_settings_never_downgrade_r3_streams(
    nats_cluster, caplog: pytest.LogCaptureFixture  # noqa: ANN001 - conftest.NatsCluster
) -> None:
    async with await EventLog.connect(_settings(nats_cluster.urls, 3)) as log:
        assert await ensure_core_stream(log) == "created"
        assert {s.replicas for s in await log.info()} == {3}

    caplog.set_level(logging.WARNING, logger="autoopt.log")
    async with await EventLog.connect(_settings(nats_cluster.urls, 1), ensure=False) as log:
        changes = {c.name: c for c in await log.ensure_streams()}
        assert await ensure_core_stream(log) == "exists"
        core = await log.js.stream_info(CORE_STREAM)
        stats = await log.info()
    assert {s.name: s.replicas for s in stats} == {s.name: 3 for s in STREAMS}
    assert core.config.num_replicas == 3
    for spec in STREAMS:
        change = changes[spec.name]
        assert change.action == "differs"
        (diff,) = change.differences
        assert (diff.field, diff.have, diff.want, diff.safe) == ("num_replicas", "3", "1", False)
    warned = [r.getMessage() for r in caplog.records]
    assert "stream MODELS: num_replicas is 3, config wants 1 (unsafe: never applied " \
        "automatically)" in warned
    assert any(m.startswith(f"stream {CORE_STREAM}: num_replicas is 3") for m in warned)


async def test_apply_takes_safe_changes_only(nats_cluster) -> None:  # noqa: ANN001
    async with await EventLog.connect(_settings(nats_cluster.urls, 1)) as log:
        assert {s.replicas for s in await log.info()} == {1}
        await ensure_core_stream(log)
    # a larger replica count is safe: --apply scales R1 up to R3
    async with await EventLog.connect(_settings(nats_cluster.urls, 3), ensure=False) as log:
        assert {c.action for c in await log.ensure_streams()} == {"differs"}
        assert {s.replicas for s in await log.info()} == {1}
        assert {c.action for c in await log.ensure_streams(apply=True)} == {"updated"}
        assert await ensure_core_stream(log, apply=True) == "updated"
        assert {s.replicas for s in await log.info()} == {3}
        assert (await log.js.stream_info(CORE_STREAM)).config.num_replicas == 3
    # and back down is not: --apply with R1 leaves R3 and reports it
    async with await EventLog.connect(_settings(nats_cluster.urls, 1), ensure=False) as log:
        changes = await log.ensure_streams(apply=True)
        assert {c.action for c in changes} == {"differs"}
        assert {s.replicas for s in await log.info()} == {3}
        assert core_stream_config(1).num_replicas == 1


def test_log_info_and_streams_report_the_difference(nats_cluster, tmp_path: Path) -> None:  # noqa: ANN001
    import asyncio

    async def create() -> None:
        async with await EventLog.connect(_settings(nats_cluster.urls, 3)):
            pass

    asyncio.run(create())
    env = {
        **os.environ,
        "AUTOOPT_NATS_URL": ",".join(nats_cluster.urls),
        "AUTOOPT_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "250",
    }
    env.pop("AUTOOPT_CONFIG", None)
    for verb in (["log", "info"], ["log", "streams", "--apply"]):
        out = subprocess.run(
            [sys.executable, "-m", "autoopt.cli", *verb],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert "stream SIGNALS: num_replicas is 3, config wants 1" in out.stdout, out.stdout

    async def replicas() -> set[int]:
        async with await EventLog.connect(_settings(nats_cluster.urls, 3), ensure=False) as log:
            return {s.replicas for s in await log.info()}

    assert asyncio.run(replicas()) == {3}
