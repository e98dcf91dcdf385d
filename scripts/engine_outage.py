"""A NATS outage of any length while `autoopt.client.Engine` produces (50 signals/s): the server
is killed (-9) for SECONDS (default 60) and restarted on the same port and store; prints how much
was spooled and whether every event was stored once, in order.

Run: ``python scripts/engine_outage.py 60`` (tests/test_client_engine.py does the same with a
seconds-long outage and an engine restart, to stay fast).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from autoopt.client import Engine
from autoopt.log import EventLog, NatsSettings
from autoopt.testing.cluster import NatsCluster


async def main(outage_s: float) -> bool:
    root = Path(tempfile.mkdtemp())
    node = NatsCluster(root / "node", size=1)
    node.start()
    n1 = node.nodes["n1"]
    log = await EventLog.connect(NatsSettings(urls=[n1.url], request_timeout_s=2.0,
                                              max_reconnect_attempts=-1, reconnect_wait_s=0.5))
    engine = Engine(log, spool_dir=root / "spool", ack_timeout_s=1.0)
    await engine.start()
    sent: list[str] = []

    async def produce(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sent.append((await engine.signal("ETHUSDT", "long", 0.5)).event_id)
            await asyncio.sleep(0.02)

    try:
        await produce(3)
        n1.kill()
        t0 = time.monotonic()
        await produce(outage_s)
        print(f"down {time.monotonic() - t0:.0f}s: spooled {engine.spooled} events, spool "
              f"{engine.spool.bytes} bytes, connected={engine.connected}")
        n1.start()
        await produce(3)
        await engine.drained(timeout=120)
        stored = [r.event.event_id async for r in log.replay_records("SIGNALS")]
        ok = stored == sent
        print(f"produced {len(sent)}, stored {len(stored)}, each once and in order: {ok}")
        return ok
    finally:
        await engine.close()
        await log.close()
        node.close()


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)) else 1)
