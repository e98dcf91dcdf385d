"""`autoopt backtest` end to end: the real command on a CSV of synthetic hourly bars with a
planted edge, real LightGBM/Optuna retrains and a real nats-server. It prints the figures and the
digest, writes the JSON and the HTML report, records exactly one `BacktestFinished` in the live
log (a rerun of the same run stores nothing more) and ingests nothing else; bad input is one
line and exit code 2."""

from __future__ import annotations

import asyncio
import html
import json
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from autoopt.cli import app
from autoopt.events import BacktestFinished, Event
from autoopt.log import EventLog, NatsSettings
from autoopt.synthetic import planted_bars


def _csv(tmp_path: Path) -> Path:
    path = tmp_path / "EDGE.csv"
    frame = planted_bars(7, "hourly", 0.7, n=2500)
    frame.with_columns(pl.from_epoch("ts", time_unit="ns")).write_csv(path)
    return path


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "autoopt.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[nats]\nurls = ["{url}"]\n'
                    "[pipeline]\ntrials = 4\n")
    return path


async def _log_state(url: str) -> tuple[dict[str, int], list[Event]]:
    """Messages per live stream, and the SYSTEM stream's events."""
    log = await EventLog.connect(NatsSettings(urls=[url]))
    try:
        counts = {s.name: s.messages for s in await log.info()}
        system = [e async for e in log.replay("SYSTEM")]
        return counts, system
    finally:
        await log.close()


def _invoke(config: Path, *args: str):  # noqa: ANN202
    return CliRunner().invoke(app, ["--config", str(config), "backtest", *args])


def test_backtest_prints_writes_and_records_one_summary_event(
    tmp_path: Path, nats_server: str
) -> None:
    cfg = _config(tmp_path, nats_server)
    csv = _csv(tmp_path)
    out_json, report = tmp_path / "out" / "result.json", tmp_path / "out" / "report.html"
    args = ["--source", f"file:{csv}", "--symbols", "EDGE", "--policies", "never,weekly",
            "--trials", "4", "--json", str(out_json), "--report", str(report)]
    res = _invoke(cfg, *args)
    assert res.exit_code == 0, res.output

    # ---- the terminal: figures per policy, the tests, the digest, where the outputs went
    out = res.output
    assert "after costs (EDGE)" in out and "is the difference real?" in out
    assert re.search(r"┃\s+┃\s+never ┃\s+weekly ┃", out)  # one column per policy
    for row in ("Sharpe", "max drawdown", "retrains", "mean model age (days)"):
        assert re.search(rf"^│ {re.escape(row)}\s+│\s+\S+ │\s+\S+ │$", out, re.M), row
    assert re.search(r"^│ weekly │ never │", out, re.M)  # the pairwise test
    digest = re.search(r"run digest ([0-9a-f]{32})", out).group(1)
    assert "retrain cache" in out
    assert f"result JSON written to {out_json}" in out
    assert f"report written to {report}" in out

    # ---- --json: the whole result, both policies' equity paths
    result = json.loads(out_json.read_text())
    assert result["run_digest"] == digest
    assert [p["policy"] for p in result["policies"]] == ["never", "weekly"]
    paths = [p["paths"]["EDGE"] for p in result["policies"]]
    assert len(paths[0]["returns"]) > 1000
    assert paths[0]["ts"] == paths[1]["ts"]  # paired on the same bars
    assert len(paths[1]["returns"]) == len(paths[1]["ts"]) == len(paths[1]["positions"])
    weekly = result["policies"][1]
    assert weekly["retrains"] >= 5  # ~10 weeks traded: the schedule fired
    assert "sharpe" in weekly["metrics"]["pooled"]
    summary = result["comparison"]["summary"]
    assert summary and [t["policy"] for t in result["comparison"]["tests"]] == ["weekly"]

    # ---- --report: one HTML file carrying the verdict
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>") or page.lower().startswith("<!doctype html>")
    flat = " ".join(out.split())  # the terminal wraps lines at its width
    for sentence in summary:
        assert html.escape(sentence, quote=True) in page
        assert " ".join(sentence.split()) in flat

    # ---- the live log: one summary event, nothing else (no bars ingested, no decisions)
    counts, system = asyncio.run(_log_state(nats_server))
    assert [type(e) for e in system] == [BacktestFinished]
    event = system[0]
    assert isinstance(event, BacktestFinished)
    assert event.run_digest == digest and event.scope == digest
    assert event.symbols == ["EDGE"] and event.source == f"file:{csv}"
    assert [(f.policy, f.retrains, f.releases) for f in event.policies] == [
        (p["policy"], p["retrains"], p["releases"]) for p in result["policies"]]
    assert event.policies[1].sharpe == pytest.approx(weekly["metrics"]["pooled"]["sharpe"])
    assert event.summary == summary
    assert event.report_path == str(report) and event.json_path == str(out_json)
    assert event.period_start == result["start_ns"] and event.period_end == result["end_ns"]
    assert {name: n for name, n in counts.items() if n} == {"SYSTEM": 1}

    # ---- a rerun of the same backtest: same digest, retrains from the cache, stored once
    again = _invoke(cfg, *args[:-4], "-q")
    assert again.exit_code == 0, again.output
    assert f"run digest {digest}" in again.output
    assert "already in the log" in again.output
    counts, system = asyncio.run(_log_state(nats_server))
    assert len(system) == 1 and {name: n for name, n in counts.items() if n} == {"SYSTEM": 1}


BAD = [
    (["--policies", "never,montly"], "unknown policy 'montly'"),
    (["--policies", "never,missing.toml"], "policy file 'missing.toml' does not exist"),
    (["--policies", "never,never"], "must be unique"),
    (["--start", "2017-13-45"], "--start '2017-13-45'"),
    (["--start", "2017-09-01", "--end", "2017-08-01"], "must be before --end"),
    (["--warmup", "95%"], "--warmup '95%'"),
    (["--train-delay", "soon"], "--train-delay 'soon'"),
    (["--symbols", "OTHER"], "OTHER"),
    (["--report", "."], "--report '.': expected a file path, not a directory"),
    (["--start", "2017-07-20", "--end", "2017-07-22"], "bars in the backtest range; need >= 100"),
]


@pytest.mark.parametrize(("extra", "needle"), BAD, ids=[b[1][:24] for b in BAD])
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, nats_server: str, extra: list[str], needle: str
) -> None:
    cfg = _config(tmp_path, nats_server)
    csv = _csv(tmp_path)
    res = _invoke(cfg, "--source", f"file:{csv}", "--policies", "never,weekly", "--trials",
                  "2", "-q", *extra)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert needle in lines[0]
    assert "Traceback" not in res.output
    counts, system = asyncio.run(_log_state(nats_server))
    assert system == [] and not any(counts.values())
