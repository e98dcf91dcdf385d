"""Dead letters keep everything: the decider dead-letters what it cannot decode with the raw
bytes, subject, headers, stream and sequence; `autoopt log dead-letters` lists them and
resubmits a corrected copy once. Real nats-server, real CLI processes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from autoopt.config import load_config
from autoopt.errors import DataError
from autoopt.events import DeadLettered, MetricsReported
from autoopt.log import EventLog
from autoopt.log.deadletter import corrected_event, dead_letter_event, resubmit_id
from autoopt.plugins import load_plugins
from autoopt.service.checkpoint import Checkpoints
from autoopt.service.core_stream import core_last_seq, ensure_core_stream
from autoopt.service.decider import Decider
from autoopt.service.metrics import ServiceMetrics
from autoopt.subjects import subject_filter_for_type

GARBAGE_SUBJECT = "autoopt.metrics.reported.GOOG"


def _cli(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUTOOPT_DATA_DIR": str(tmp_path), "AUTOOPT_NATS_URL": url, "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "autoopt.cli", *args], env=env, capture_output=True, text=True,
        timeout=120,
    )


async def _letters(log: EventLog) -> list:
    return [r async for r in log.replay_records("DEADLETTER")]


async def _decide_garbage(tmp_path: Path, log: EventLog, payload: bytes) -> DeadLettered:
    """Run a decider over one raw message on a core-input subject; return its dead letter."""
    config = load_config(environ={"AUTOOPT_DATA_DIR": str(tmp_path)})
    await ensure_core_stream(log)
    decider = Decider(log, config, load_plugins(entry_points=False), ServiceMetrics(),
                      await Checkpoints.open(log, config))
    await decider.restore()
    stop = asyncio.Event()
    task = asyncio.create_task(decider.run(stop))
    try:
        await log.js.publish(GARBAGE_SUBJECT, payload, headers={"X-Producer": "legacy-bot"})
        for _ in range(400):
            last = await core_last_seq(log)
            if last >= 1 and decider.seq == last:
                break
            await asyncio.sleep(0.05)
        [record] = await _letters(log)
    finally:
        stop.set()
        await task
    assert decider.seq == 1 and decider.state.data.n_events == 0
    return record.event


async def test_the_decider_dead_letters_an_undecodable_message_with_everything(
    tmp_path: Path, event_log: EventLog
) -> None:
    raw = b"\xc1 not msgpack at all"
    letter = await _decide_garbage(tmp_path, event_log, raw)
    assert letter.payload == raw
    assert (letter.stream, letter.seq, letter.subject) == ("CORE", 1, GARBAGE_SUBJECT)
    assert letter.consumer == "decider" and letter.error.startswith("undecodable: ")
    assert letter.headers.get("X-Producer") == "legacy-bot"
    # the same dead letter built again (another instance) has the same id: stored once
    again = dead_letter_event(stream="CORE", subject=GARBAGE_SUBJECT, seq=1, consumer="decider",
                              error="x", payload=raw)
    assert (await event_log.append(again)).duplicate


async def test_cli_lists_dead_letters_as_json_and_table(tmp_path: Path, event_log: EventLog) -> None:
    raw = msgspec.msgpack.encode({"type": "metrics.reported", "symbol": "GOOG", "blob": b"\x00\x01"})
    await _decide_garbage(tmp_path, event_log, raw)
    url = event_log.settings.urls[0]
    out = await asyncio.to_thread(_cli, tmp_path, url, "log", "dead-letters", "--json", "--stream", "CORE")
    assert out.returncode == 0, out.stderr
    [row] = [json.loads(line) for line in out.stdout.splitlines()]
    assert base64.b64decode(row["payload_b64"]) == raw
    assert row["decoded"]["symbol"] == "GOOG" and row["subject"] == GARBAGE_SUBJECT
    assert row["stream"] == "CORE" and row["origin_seq"] == 1 and row["consumer"] == "decider"
    table = await asyncio.to_thread(_cli, tmp_path, url, "log", "dead-letters")
    assert table.returncode == 0 and "CORE/1" in table.stdout and "decider" in table.stdout
    other = await asyncio.to_thread(_cli, tmp_path, url, "log", "dead-letters", "--json", "--stream", "SIGNALS")
    assert other.returncode == 0 and other.stdout.strip() == ""


async def test_cli_resubmits_a_corrected_copy_once(tmp_path: Path, event_log: EventLog) -> None:
    # a structurally plausible event missing its window and with a bad metrics field
    raw = msgspec.msgpack.encode({
        "type": "metrics.reported", "event_id": "orig-1", "ts_event": 5, "ts_init": 5,
        "symbol": "GOOG", "metrics": "oops",
    })
    letter = await _decide_garbage(tmp_path, event_log, raw)
    [record] = await _letters(event_log)
    url = event_log.settings.urls[0]
    still_bad = await asyncio.to_thread(_cli, tmp_path, url, "log", "dead-letters", "--resubmit",
                                        str(record.seq), "--set", "window=1d")
    assert still_bad.returncode == 2
    assert "still invalid" in still_bad.stderr and "Traceback" not in still_bad.stderr
    assert len(still_bad.stderr.strip().splitlines()) == 1
    fix = tmp_path / "fix.json"
    fix.write_text(json.dumps({"metrics": {"sharpe": 1.5}}))
    args = ("log", "dead-letters", "--resubmit", str(record.seq), "--set", "window=1d", "--with", str(fix))
    first = await asyncio.to_thread(_cli, tmp_path, url, *args)
    assert first.returncode == 0, first.stderr
    second = await asyncio.to_thread(_cli, tmp_path, url, *args)
    assert second.returncode == 0 and "already resubmitted" in second.stdout
    stored = [e async for e in event_log.replay(subject_filter_for_type(MetricsReported))]
    [event] = stored
    assert event.event_id == resubmit_id(letter) and event.causation_id == letter.event_id
    assert event.window == "1d" and event.metrics == {"sharpe": 1.5} and event.ts_event == 5
    missing = await asyncio.to_thread(_cli, tmp_path, url, "log", "dead-letters", "--resubmit", "999")
    assert missing.returncode == 2 and "no dead letter at DEADLETTER sequence 999" in missing.stderr


def test_corrected_event_names_what_is_wrong_for_a_payload_that_is_not_a_map() -> None:
    letter = dead_letter_event(stream="SIGNALS", subject="autoopt.signal.emitted.X", seq=3,
                               consumer="c", error="e", payload=b"\x93\x01\x02\x03")
    with pytest.raises(DataError, match="not a map"):
        corrected_event(letter, {})


async def test_a_message_that_nearly_fills_max_payload_is_dead_lettered_not_a_stall(
    tmp_path: Path, event_log: EventLog
) -> None:
    """A refused payload close to the server's max_payload cannot be copied whole into a letter
    (the letter would exceed it, and the decider used to retry that append forever): the letter
    keeps the first bytes, the size and the SHA-256, and the decider moves on."""
    import hashlib

    from autoopt.log.deadletter import MAX_PAYLOAD

    max_payload = event_log.nc.max_payload
    raw = b"\xc1" + os.urandom(max_payload - 300)
    letter = await _decide_garbage(tmp_path, event_log, raw)
    assert letter.truncated and len(letter.payload) == MAX_PAYLOAD
    assert letter.payload == raw[:MAX_PAYLOAD]
    assert letter.payload_size == len(raw)
    assert letter.payload_sha256 == hashlib.sha256(raw).hexdigest()
    with pytest.raises(DataError, match="kept 262144 of"):
        corrected_event(letter, {})
