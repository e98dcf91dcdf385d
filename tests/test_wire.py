"""The wire contract: docs/wire.md's field tables are the ones generated from the structs, the
JSON Schema names every event with its subject, and events built by hand as plain msgpack maps
(no autoopt classes) and published with nats-py are taken by a running service: the decider
turns a retrain request into a decision, the router passes a signal on to the engine's route
subject, and none of them is dead-lettered."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import msgspec
import nats
import pytest

from autoopt import wire
from autoopt.config import load_config
from autoopt.events import ALL_EVENT_TYPES, DecisionMade
from autoopt.log import EventLog
from autoopt.plugins import load_plugins
from autoopt.service.app import Service

DOC = Path(__file__).parent.parent / "docs" / "wire.md"


def test_wire_doc_tables_are_generated_from_the_structs() -> None:
    text = DOC.read_text()
    current = wire.markdown_reference(wire.ENGINE_TYPES)
    assert current in text, "docs/wire.md is stale: run autoopt schema --markdown --engine"


def test_schema_json_covers_every_event() -> None:
    out = subprocess.run([sys.executable, "-m", "autoopt.cli", "schema", "--json"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    schema = json.loads(out)
    tags = {d["x-autoopt"]["tag"] for d in schema["$defs"].values() if "x-autoopt" in d}
    assert tags == {t.type_tag() for t in ALL_EVENT_TYPES}
    sig = schema["$defs"]["SignalEmitted"]
    assert sig["x-autoopt"]["subject"] == "autoopt.signal.emitted.<symbol>"
    assert {"event_id", "ts_event", "ts_init", "symbol", "signal_id", "side",
            "confidence"} <= set(sig["required"])
    assert "return" in schema["$defs"]["TradeOutcome"]["properties"]


@pytest.mark.parametrize(("args", "expected"), [
    (["--json", "--markdown"], "give one"),
    (["--json", "--engine"], "add --markdown"),
])
def test_schema_conflicting_forms_are_one_line(args: list[str], expected: str) -> None:
    """Asked for two forms at once, `autoopt schema` says so instead of printing one of them."""
    out = subprocess.run([sys.executable, "-m", "autoopt.cli", "schema", *args],
                         capture_output=True, text=True, timeout=60)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and out.stdout == "" and len(lines) == 1, out.stderr
    assert lines[0].startswith("error: schema: ") and expected in lines[0]


def _now() -> dict[str, object]:
    t = time.time_ns()
    return {"event_id": str(uuid.uuid4()), "ts_event": t, "ts_init": t}


async def test_hand_built_msgpack_events_are_taken_by_the_service(
        event_log: EventLog, nats_server: str, tmp_path: Path) -> None:
    cfg_path = tmp_path / "autoopt.toml"
    cfg_path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[nats]\nurls = ["{nats_server}"]\n'
        "[service]\nhttp_port = 0\ntick_interval_s = 0\nmax_deliver = 1\n"
        '[policy]\nschedule = ""\n[ab]\nenabled = true\n')
    service = Service(load_config(cfg_path, environ={}), event_log, load_plugins())
    served = asyncio.create_task(service.run())
    nc = await nats.connect(nats_server)
    try:
        async with asyncio.timeout(30):
            while service.router is None or not service.router.ready.is_set():
                await asyncio.sleep(0.05)
        routed = await nc.subscribe("autoopt.route.live")
        js = nc.jetstream()
        signal = {"type": "signal.emitted", **_now(), "symbol": "BTCUSDT", "signal_id": "s-1",
                  "side": "long", "confidence": 0.62, "price": 42000.5}
        request = {"type": "training.requested", **_now(), "symbol": "BTCUSDT",
                   "reason": "engine: hit rate fell", "requested_by": "rust-engine"}
        outcome = {"type": "trade.outcome", **_now(), "symbol": "BTCUSDT", "trade_id": "t-1",
                   "side": "long", "qty": 1.0, "entry_price": 100.0, "exit_price": 101.0,
                   "fees": 0.1, "pnl": 0.9, "return": 0.009, "signal_id": "s-1"}
        for subject, ev in (("autoopt.signal.emitted.BTCUSDT", signal),
                            ("autoopt.training.requested.BTCUSDT", request),
                            ("autoopt.trade.outcome.BTCUSDT", outcome)):
            ack = await js.publish(subject, msgspec.msgpack.encode(ev),
                                   headers={"Nats-Msg-Id": ev["event_id"]})
            assert ack.seq > 0
        msg = await routed.next_msg(timeout=30)
        assert msgspec.msgpack.decode(msg.data)["event_id"] == signal["event_id"]

        async def decided() -> list[DecisionMade]:
            return [e async for e in event_log.replay("DECISIONS")
                    if isinstance(e, DecisionMade) and e.kind == "retrain"]

        async with asyncio.timeout(30):
            while not await decided():
                await asyncio.sleep(0.1)
        (decision,) = await decided()
        assert decision.details["request_id"] == request["event_id"]
        assert decision.details["request_reason"] == "engine: hit rate fell"
        trades = [e async for e in event_log.replay("TRADES")]
        assert [e.event_id for e in trades] == [outcome["event_id"]]
        refused = [e.subject async for e in event_log.replay("DEADLETTER")]
        # (the retrain job itself fails, no bars here: its decision is dead-lettered, not ours)
        assert not [s for s in refused if s.split(".")[1] in ("signal", "training", "trade")]
    finally:
        await nc.close()
        service.stop.set()
        await asyncio.wait_for(served, 60)
