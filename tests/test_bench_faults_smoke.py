"""The fault benchmark's first two scenarios at a small scale, so CI runs the drill: the real
`autoopt serve` process under load with hostile messages, and a nats-server killed -9 and
started again mid-load. Every message sent is decided or dead-lettered, none twice, and the
service process never restarts."""

from __future__ import annotations

from pathlib import Path

from autoopt.testing.faultbench import Scenario, run_scenario


async def test_steady_load_decides_or_dead_letters_every_message(tmp_path: Path) -> None:
    row = await run_scenario(Scenario("steady", rate=60.0, duration_s=3.0), tmp_path)
    assert row.sent == 180 and row.hostile == 9
    assert row.lost == 0, row
    assert row.duplicated == 0, row
    assert row.dead_lettered == row.hostile, row  # exactly the hostile ones
    assert row.accepted == row.sent - row.hostile, row
    assert row.service_restarts == 0 and row.task_restarts == 0, row
    assert row.p99_before_ms is not None and row.p99_during_ms is None


async def test_nats_restart_mid_load_loses_and_doubles_nothing(tmp_path: Path) -> None:
    row = await run_scenario(
        Scenario("restart", fault="restart", rate=60.0, duration_s=4.0, down_s=1.0), tmp_path
    )
    assert row.killed == "n1"
    assert row.lost == 0, row
    assert row.duplicated == 0, row
    assert row.dead_lettered == row.hostile == 12, row
    assert row.accepted == row.sent - row.hostile, row
    assert row.service_restarts == 0, row
    assert row.recover_s is not None and row.p99_during_ms is not None, row
