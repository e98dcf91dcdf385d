"""Readers tolerate bad records: replays skip and count what does not decode (``strict`` fails
instead), and so do the CLI replays, the model watcher and the ``log:`` bar source.
Real nats-server, real CLI processes, garbage published raw on autoopt subjects."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoopt.client import ModelWatcher
from autoopt.errors import DataError
from autoopt.events import BarBatch, MetricsReported, ModelPromoted
from autoopt.log import EventLog
from autoopt.log.eventlog import ReplayStats
from autoopt.pipeline.ingest import stored_bars
from autoopt.plugins import load_plugins
from autoopt.registry import ModelRegistry
from autoopt.service.core_stream import core_last_seq, ensure_core_stream
from autoopt.subjects import subject_for

GARBAGE = b"\xc1\xc1 definitely not an event"
T_OPEN = 1_704_207_600_000_000_000  # 2024-01-02 15:00 UTC, a Tuesday in US trading hours


def _cli(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUTOOPT_DATA_DIR": str(tmp_path), "AUTOOPT_NATS_URL": url, "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "autoopt.cli", *args], env=env, capture_output=True, text=True,
        timeout=120,
    )


async def _metrics_with_garbage(log: EventLog) -> list[MetricsReported]:
    """good, garbage, good, garbage, good on the METRICS stream (seqs 1..5)."""
    good = [MetricsReported.new(symbol="GOOG", window="1d", metrics={"sharpe": float(i)}) for i in range(3)]
    for i, event in enumerate(good):
        await log.append(event)
        if i < 2:
            await log.js.publish(subject_for(event), GARBAGE)
    return good


async def test_replays_skip_and_count_bad_records_and_strict_fails(event_log: EventLog) -> None:
    good = await _metrics_with_garbage(event_log)
    stats = ReplayStats()
    batches = [b async for b in event_log.replay_batches("METRICS", stats=stats)]
    assert [r.event.event_id for b in batches for r in b] == [e.event_id for e in good]
    assert (stats.skipped, stats.first_seq) == (2, 2)
    assert "skipped 2" in stats.summary("METRICS")
    stats = ReplayStats()
    records = [r async for r in event_log.replay_records("METRICS", stats=stats)]
    assert [r.seq for r in records] == [1, 3, 5] and stats.skipped == 2
    events = [e async for e in event_log.replay("METRICS", start_seq=3)]
    assert [e.event_id for e in events] == [e.event_id for e in good[1:]]
    with pytest.raises(DataError, match="METRICS seq 2"):
        _ = [r async for r in event_log.replay_records("METRICS", strict=True)]


async def test_cli_log_replay_reports_skipped_records_and_strict_exits_2(
    tmp_path: Path, event_log: EventLog
) -> None:
    await _metrics_with_garbage(event_log)
    url = event_log.settings.urls[0]
    out = await asyncio.to_thread(_cli, tmp_path, url, "log", "replay", "-s", "METRICS")
    assert out.returncode == 0, out.stderr
    assert "3 events" in out.stdout
    assert "skipped 2 undecodable record(s) of METRICS; first at seq 2" in out.stdout
    strict = await asyncio.to_thread(_cli, tmp_path, url, "log", "replay", "-s", "METRICS", "--strict")
    assert strict.returncode == 2 and "METRICS seq 2" in strict.stderr
    assert "Traceback" not in strict.stderr


async def test_cli_replay_decisions_skips_bad_core_records(tmp_path: Path, event_log: EventLog) -> None:
    await ensure_core_stream(event_log)
    await _metrics_with_garbage(event_log)
    for _ in range(400):
        if await core_last_seq(event_log) >= 5:
            break
        await asyncio.sleep(0.05)
    url = event_log.settings.urls[0]
    out = await asyncio.to_thread(_cli, tmp_path, url, "replay", "--decisions")
    assert out.returncode == 0, out.stderr
    assert "3 events" in out.stdout and "digest " in out.stdout
    assert "skipped 2 undecodable record(s) of CORE" in out.stderr
    strict = await asyncio.to_thread(_cli, tmp_path, url, "replay", "--decisions", "--strict")
    assert strict.returncode == 2 and "CORE seq" in strict.stderr and "Traceback" not in strict.stderr


async def test_model_watcher_opens_with_garbage_on_a_models_subject(
    tmp_path: Path, event_log: EventLog
) -> None:
    promoted = ModelPromoted.new(symbol="GOOG", release_id="r-missing")
    await event_log.js.publish(subject_for(promoted), GARBAGE)
    watcher = ModelWatcher(
        "GOOG", log=event_log, registry=ModelRegistry(tmp_path), plugins=load_plugins(entry_points=False)
    )
    try:
        assert await watcher.start() is None  # opened: no champion yet, the garbage skipped
    finally:
        await watcher.close()


async def test_log_bar_source_reads_past_a_bad_record(event_log: EventLog) -> None:
    bars = BarBatch.from_arrays(
        symbol="GOOG", timeframe="1m", ts=[T_OPEN + 60_000_000_000 * i for i in range(3)],
        open=[1.0, 2.0, 3.0], high=[1.5, 2.5, 3.5], low=[0.5, 1.5, 2.5], close=[1.2, 2.2, 3.2],
        volume=[1.0, 1.0, 1.0], source="test",
    )
    await event_log.js.publish(subject_for(bars), GARBAGE)
    await event_log.append(bars)
    frame = await stored_bars(event_log, "GOOG")
    assert frame is not None and frame.height == 3
