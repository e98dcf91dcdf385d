"""`autoopt why` and `autoopt log replay --json/--type/--symbol/--since` on a real log: a decision
with evidence caused a real retrain that released, a drift report followed, and a stricter gate
refused the next challenger (`autoopt.testing.story`, the session's ``story_log``)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from autoopt.cli import app
from autoopt.testing.story import Story


def _cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args), env=env)
    return res.exit_code, res.output


def test_why_explains_champion_from_the_log(story_log: tuple[dict[str, str], Story]) -> None:
    env, story = story_log
    code, out = _cli(env, "why", "GOOG", "--json")
    assert code == 0, out
    x = json.loads(out)
    assert x["champion"] == story.release_id and x["how"] == "promoted"
    # the trigger is the decision, with its evidence
    assert x["trigger"]["kind"] == "decision" and x["trigger"]["reason"] == "drift.psi"
    assert x["trigger"]["decision_id"] == story.decision.event_id
    assert x["trigger"]["evidence"] == {"psi": 0.31, "threshold": 0.2, "feature": "ret1"}
    # the gate's numbers are the verdict's
    result = story.released.results[0]
    assert x["gate"]["passed"] is True
    assert x["gate"]["metrics"]["sharpe"] == pytest.approx(result.metrics["sharpe"])
    assert x["gate"]["n_trials"] == result.n_trials == 3
    assert [t["challenger"] for t in x["tried"]] == [story.release_id]
    # lineage: run, data range, features
    assert x["lineage"]["run_id"] == story.released.run_id
    assert x["lineage"]["features"] == result.features
    assert x["lineage"]["data_start"].startswith("2004-")
    # since: the drift and the refusal of the strict run
    assert x["after"]["drifted"] == 1 and x["after"]["last_drift"]["feature"] == "vol20"
    assert x["after"]["refusals"] == 1 and x["after"]["refusal_streak"] == 1
    assert x["after"]["last_refusal"]["challenger"].startswith(story.refused.run_id)

    code, text = _cli(env, "why", "GOOG")
    assert code == 0, text
    flat = " ".join(text.split())
    assert f"champion {story.release_id}" in flat
    assert "retrain because drift.psi" in flat and "psi=0.31" in flat
    assert "refusals: 1 (streak 1)" in flat


def test_why_at_a_time_before_any_release(story_log: tuple[dict[str, str], Story]) -> None:
    env, _ = story_log
    code, out = _cli(env, "why", "GOOG", "--at", "2001-01-01T00:00:00", "--json")
    assert code == 0, out
    assert json.loads(out)["champion"] is None
    code, out = _cli(env, "why", "GOOG", "--at", "2001-01-01")
    assert code == 1 and "no champion" in out
    code, out = _cli(env, "why", "GOOG", "--at", "last tuesday")
    assert code == 2 and "--at" in out


def test_replay_json_prints_whole_events(story_log: tuple[dict[str, str], Story]) -> None:
    env, story = story_log
    code, out = _cli(env, "log", "replay", "--json", "--type", "decision.made")
    assert code == 0, out
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert {r["event"]["type"] for r in rows} == {"decision.made"}
    rows = [r for r in rows if r["event"]["event_id"] == story.decision.event_id]
    assert len(rows) == 1  # (a service test may add decisions of other symbols)
    ev = rows[0]["event"]
    assert ev["type"] == "decision.made" and ev["event_id"] == story.decision.event_id
    assert ev["details"] == story.decision.details and rows[0]["seq"] >= 1
    assert rows[0]["subject"] == "autoopt.decision.made.GOOG"

    code, out = _cli(env, "log", "replay", "--json", "--type", "model", "--symbol", "GOOG")
    types = [json.loads(line)["event"]["type"] for line in out.splitlines() if line.startswith("{")]
    assert code == 0 and types.count("model.verdict") == 2 and "model.released" in types
    assert set(types) <= {"model.verdict", "model.released", "model.promoted"}

    # the symbol filter: none of GOOG's events under another symbol (the session's log is
    # shared: a service test may have released AAPL models)
    code, out = _cli(env, "log", "replay", "--json", "--type", "ModelReleased", "--symbol", "AAPL")
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert code == 0 and all(r["subject"] == "autoopt.model.released.AAPL" for r in rows)
    assert story.release_id not in {r["event"].get("release_id") for r in rows}

    # --since: nothing was stored in the future; everything within a day
    code, out = _cli(env, "log", "replay", "--json", "--type", "decision", "--since",
                     "2100-01-01T00:00:00")
    assert code == 0 and "0 events" in out
    code, out = _cli(env, "log", "replay", "--json", "--type", "decision", "--since", "1d")
    assert code == 0 and story.decision.event_id in out


def test_replay_pretty_wraps_instead_of_cutting(story_log: tuple[dict[str, str], Story]) -> None:
    env, story = story_log
    code, out = _cli(env, "log", "replay", "--type", "model.verdict")
    assert code == 0, out
    assert "..." not in out
    verdict_reason = story.released.results[0].reasons[1]  # the long dsr_pass line
    assert len(verdict_reason) > 150
    assert verdict_reason.replace(" ", "") in out.replace("\n", "").replace(" ", "")


def test_replay_bad_filters_are_one_line(story_log: tuple[dict[str, str], Story]) -> None:
    env, _ = story_log
    code, out = _cli(env, "log", "replay", "--type", "model.exploded")
    assert code == 2 and "--type 'model.exploded' is not an event type" in out
    code, out = _cli(env, "log", "replay", "--since", "a while")
    assert code == 2 and "--since" in out
    code, out = _cli(env, "log", "replay", "--since", "1h", "--from", "3")
    assert code == 2 and "not both" in out
