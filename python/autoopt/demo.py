"""The demo job: every stage of autoopt on the embedded server and the bundled real bars.

Stages grow with the project; each one is real (real nats-server, real plugins, real models).
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from autoopt.config import Config
from autoopt.runtime import open_event_log, open_plugins


async def run_demo(config: Config, *, source: str, console: Console) -> dict[str, object]:
    """Run the demo; returns a small summary (also printed) for tests and scripts."""
    plugins = open_plugins(config)
    table = Table(title="plugins")
    for col in ("plugin", "version", "hooks"):
        table.add_column(col)
    for info in plugins.info():
        table.add_row(info.name, info.version, ", ".join(info.hooks))
    console.print(table)

    log = await open_event_log(config)
    summary: dict[str, object] = {"nats_url": log.url}
    try:
        console.print(f"event log: {log.url}")
        bars = plugins.data_source_for(source).load(source)
        from autoopt.pipeline.ingest import ingest_bars

        t0 = time.perf_counter()
        ingested = {}
        for symbol, frame in bars.items():
            ingested[symbol] = await ingest_bars(log, symbol, frame, source=source)
        console.print(f"ingested {ingested} in {time.perf_counter() - t0:.2f}s")
        summary["ingested"] = ingested
    finally:
        await log.close()
    return summary
