"""Fault benchmark: the real `autoopt serve` under steady load while NATS servers fail.

Three rows, each on fresh loopback servers: a steady-load baseline (one node); the one node
killed -9 mid-load and started again on the same port and store; a 3-node cluster (streams at
replicas=3) whose CORE leader is killed -9 mid-load and started later. The load is core inputs
(manual retrain requests, metrics, signals, trade outcomes) with ~5% hostile raw messages (an
empty symbol, a NaN, random bytes). Every count is taken from the streams afterwards; what
each column means is in `autoopt.testing.faultbench`. lost, duplicated and service restarts
must be 0.

Run: ``pytest benches/bench_faults.py --benchmark-only -s`` or
``python benches/bench_faults.py [--rate 200] [--duration 8] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
from pathlib import Path

from autoopt.testing.faultbench import Row, default_scenarios, run_all, table


def _check(rows: list[Row]) -> list[str]:
    """The promises a row broke (empty: none)."""
    return [
        f"{r.scenario}: lost {r.lost}, duplicated {r.duplicated}, service restarts "
        f"{r.service_restarts}"
        for r in rows
        if r.lost or r.duplicated or r.service_restarts
    ]


def test_fault_scenarios(benchmark, tmp_path: Path) -> None:  # noqa: ANN001 - pytest-benchmark
    rows = benchmark.pedantic(
        lambda: asyncio.run(run_all(default_scenarios(), tmp_path)), rounds=1, iterations=1
    )
    benchmark.extra_info["rows"] = [r.as_dict() for r in rows]
    print("\n" + table(rows))
    assert not _check(rows), _check(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load per row")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0:
        parser.error("--rate and --duration must be > 0")
    logging.basicConfig(level=logging.ERROR)  # the drill's reconnect warnings are expected
    with tempfile.TemporaryDirectory(prefix="autoopt-faults-") as tmp:
        rows = asyncio.run(run_all(default_scenarios(args.rate, args.duration), Path(tmp)))
    print(table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps([r.as_dict() for r in rows], indent=2))
    broken = _check(rows)
    for line in broken:
        print(f"error: {line}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
