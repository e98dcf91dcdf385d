"""``autoopt ab``: create, start, list, status and conclude against a real embedded server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from autoopt.cli.ab import app
from autoopt.cli.context import CliContext
from autoopt.config import load_config
from autoopt.events import SignalEmitted, SignalRouted, TradeOutcome
from autoopt.runtime import open_event_log


def _ab(data_dir: Path, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), obj=CliContext(data_dir=str(data_dir)))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def _trades(data_dir: Path) -> None:
    """Routes and outcomes as the router and the engine would write them."""

    async def go() -> None:
        log = await open_event_log(load_config(None, overrides={"data_dir": str(data_dir)}))
        rng = np.random.default_rng(9)
        events = []
        for i in range(400):
            variant = "control" if i % 2 else "chal"
            sig = SignalEmitted.new(
                symbol="BTCUSDT", signal_id=f"s{i}", side="long", confidence=1.0
            )
            routed = SignalRouted.new(cause=sig, step="r", symbol="BTCUSDT", signal_id=f"s{i}",
                                      experiment="cli-exp", variant=variant, release_id="r")  # fmt: skip
            ret = float(rng.normal(0.006 if variant == "chal" else 0.0, 0.01))
            events += [routed, TradeOutcome.new(
                symbol="BTCUSDT", trade_id=f"t{i}", side="long", qty=1.0, entry_price=1.0,
                exit_price=1.0 + ret, fees=0.0, pnl=ret, return_=ret, signal_id=f"s{i}",
            )]  # fmt: skip
        try:
            await log.append_many(events)
        finally:
            await log.close()

    asyncio.run(go())


def _releases(data_dir: Path) -> tuple[str, str]:
    """Two real BTCUSDT releases: the first recorded in the log, the second only in the registry
    (published, never announced by a ModelReleased)."""
    from autoopt.registry import ModelRegistry
    from autoopt.testing.releases import tiny_release

    async def go() -> tuple[str, str]:
        log = await open_event_log(load_config(None, overrides={"data_dir": str(data_dir)}))
        try:
            registry = ModelRegistry(data_dir)
            r1 = await tiny_release(registry, log, "BTCUSDT", 1)
            r2 = await tiny_release(registry, log, "BTCUSDT", 2, record=False)
            registry.publish("BTCUSDT", r2)
            return r1, r2
        finally:
            await log.close()

    return asyncio.run(go())


def test_ab_cli_lifecycle(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r1, r2 = _releases(data)
    out = _ab(
        data, "create", "cli-exp", "--symbol", "BTCUSDT",
        "--variant", f"control:{r1}:0.5", "--variant", f"chal:{r2}:0.5:confidence_threshold=0.6",
        "--hypothesis", "r2 trades better", "--guardrail", "max_drawdown=0.5",
        "--min-samples", "50", "--start",
    )  # fmt: skip
    assert "created and started" in out
    listed = json.loads(_ab(data, "list", "--json"))
    assert [(r["name"], r["status"], r["champion"]) for r in listed] == [
        ("cli-exp", "running", "control")
    ]
    assert listed[0]["variants"][1]["config"] == {"confidence_threshold": 0.6}

    _trades(data)
    text = _ab(data, "status", "cli-exp")
    for needle in ("Welch t", "Mann-Whitney U", "Sharpe diff", "mSPRT", "decision now: promote"):
        assert needle in text, text
    status = json.loads(_ab(data, "status", "cli-exp", "--json"))
    chal = status["decision"]["statistics"]["variants"]["chal"]
    assert chal["n"] == 200 and chal["routed"] == 200

    # r2 was never released: no promotion without a recorded release (one promotion path)
    refused = CliRunner().invoke(app, ["conclude", "cli-exp", "--winner", "chal"],
                                 obj=CliContext(data_dir=str(data)))
    assert refused.exit_code == 2 and f"release {r2} has no ModelReleased" in refused.output
    assert json.loads(_ab(data, "list", "--json"))[0]["status"] == "running"
    assert "ExperimentConcluded" in _ab(data, "conclude", "cli-exp")
    after = json.loads(_ab(data, "list", "--json"))[0]
    assert (after["status"], after["winner"]) == ("concluded", None)


def test_ab_cli_refuses_bad_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["create", "x", "--symbol", "BTCUSDT", "--variant", "a:r1", "--variant", "b:r2:0.5"],
        obj=CliContext(data_dir=str(tmp_path / "d")),
    )
    assert result.exit_code == 2 and "name:release:weight" in result.output
    result = CliRunner().invoke(
        app, ["status", "nope"], obj=CliContext(data_dir=str(tmp_path / "d"))
    )
    assert result.exit_code == 2 and "no experiment named 'nope'" in result.output


def test_ab_create_refuses_a_release_the_registry_does_not_hold(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r1, _ = _releases(data)
    for symbol, expected in (("BTCUSDT", "release 'r-missing' of BTCUSDT is not in the registry"),
                             ("*", "release 'r-missing' of any symbol is not in the registry"),
                             ("ETHUSDT", f"release '{r1}' of ETHUSDT is not in the registry")):
        missing = "r-missing" if symbol != "ETHUSDT" else r1
        result = CliRunner().invoke(app, [
            "create", "x", "--symbol", symbol, "--variant", f"control:{r1}:0.5",
            "--variant", f"chal:{missing}:0.5"], obj=CliContext(data_dir=str(data)))
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert expected in lines[0] and "variant " in lines[0], lines[0]
    assert json.loads(_ab(data, "list", "--json")) == []  # nothing was recorded
