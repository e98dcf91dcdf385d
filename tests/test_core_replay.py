"""Replay of the decision core: determinism, checkpoints, the digest across processes, and the
diff between two configs.

The log comes from a small simulated deployment: two symbols with bars, signals, trade outcomes,
metrics and feature batches, where every Retrain the core decides is followed (as the service
would do it) by its DecisionMade record, TrainingStarted, TrainingFinished, ModelReleased,
ModelPromoted and the new release's training reference.
"""

from __future__ import annotations

import heapq
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoopt.clock import NS_PER_S
from autoopt.config import DegradationPolicy, DriftPolicy, PolicyConfig
from autoopt.core import (
    Command,
    State,
    decide,
    decision_event,
    diff_decisions,
    encode_commands,
    replay_decisions,
    verify_recorded,
)
from autoopt.errors import DataError, ReplayMismatch
from autoopt.events import (
    BarBatch,
    DecisionMade,
    Event,
    FeatureBatch,
    MetricsReported,
    ModelPromoted,
    ModelReleased,
    ModelRolledBack,
    RetrainRequested,
    SignalEmitted,
    TradeOutcome,
    TrainingFinished,
    TrainingStarted,
    decode,
    encode,
)

T0 = 1_704_067_200 * NS_PER_S  # 2024-01-01 00:00 UTC
MIN = 60 * NS_PER_S
SYMBOLS = ("BTC", "ETH")


def policy(**over: Any) -> PolicyConfig:
    base: dict[str, Any] = dict(
        schedule="0 3 * * *",
        cooldown_s=4 * 3600.0,
        max_concurrent=1,
        degradation=DegradationPolicy(threshold=0.05, window=6),
        drift=DriftPolicy(min_rows=240, page_hinkley_threshold=5.0),
    )
    base.update(over)
    return PolicyConfig(**base)


def _features(symbol: str, t: int, rows: int, shift: float, rng: np.random.Generator, **kw: Any):
    return FeatureBatch.from_arrays(
        symbol=symbol, feature_set="default", ts=t - np.arange(rows, 0, -1) * MIN,
        columns={"ret": rng.normal(shift, 1.0, rows), "vol": rng.gamma(2.0, 1.0, rows)},
        ts_event=t, ts_init=t, **kw,
    )


def inputs(seed: int, hours: int) -> list[Event]:
    """The outside world: market data, signals, outcomes and metrics. BTC's confidences shift
    after a third of the time; after half of it ETH's features shift and accuracy drops."""
    rng = np.random.default_rng(seed)
    out: list[Event] = []
    for step in range(hours * 6):  # every 10 minutes
        t = T0 + step * 10 * MIN
        late = step > hours * 3
        for s in SYMBOLS:
            conf = rng.normal(0.75 if (step > hours * 2 and s == "BTC") else 0.55, 0.03)
            out.append(SignalEmitted(
                event_id=f"sig-{s}-{step}", ts_event=t, ts_init=t, symbol=s,
                signal_id=f"{s}-{step}", side="long", confidence=float(conf),
            ))
            if step % 3 == 0:
                r = float(rng.normal(0.001, 0.01))
                out.append(TradeOutcome(
                    event_id=f"out-{s}-{step}", ts_event=t, ts_init=t, symbol=s,
                    trade_id=f"{s}-t{step}", side="long", qty=1.0, entry_price=100.0,
                    exit_price=100.0 * (1 + r), fees=0.0, pnl=100.0 * r, return_=r,
                ))
            if step % 6 == 0:
                out.append(BarBatch.from_arrays(
                    symbol=s, timeframe="1h", ts=[t], open=[1.0], high=[1.0], low=[1.0],
                    close=[1.0], volume=[1.0], event_id=f"bar-{s}-{step}", ts_event=t, ts_init=t,
                ))
                shift = 1.0 if (late and s == "ETH") else 0.0
                out.append(_features(s, t, 60, shift, rng, event_id=f"feat-{s}-{step}"))
                acc = 0.70 - (0.06 if late else 0.0) + float(rng.normal(0, 0.005))
                out.append(MetricsReported(
                    event_id=f"met-{s}-{step}", ts_event=t, ts_init=t, symbol=s, window="1h",
                    metrics={"accuracy": acc, "precision": acc - 0.02, "sharpe": 1.5},
                ))
        if step == hours * 2:
            out.append(RetrainRequested(
                event_id=f"manual-{step}", ts_event=t, ts_init=t, symbol="ETH", reason="manual",
                requested_by="ops",
            ))
    return out


def _release_events(symbol: str, rid: str, t: int, rng: np.random.Generator) -> list[Event]:
    return [
        ModelReleased(
            event_id=f"rel-{rid}", ts_event=t, ts_init=t, symbol=symbol, release_id=rid,
            model_type="lgbm", sha256="0" * 64, uri=f"file:///m/{rid}",
            metrics={"accuracy": 0.70, "precision": 0.68, "sharpe": 1.5},
        ),
        ModelPromoted(event_id=f"pro-{rid}", ts_event=t, ts_init=t, symbol=symbol, release_id=rid),
        _features(symbol, t, 600, 0.0, rng, event_id=f"ref-{rid}", release_id=rid),
    ]


def simulate(config: PolicyConfig, seed: int = 0, hours: int = 48) -> tuple[list[Event], list[Command]]:
    """Run the core live over the inputs, acting on its decisions as the service would.

    Returns the resulting log (inputs, DecisionMade records and the training/release events the
    decisions caused, in log order) and every output the core gave live.
    """
    rng = np.random.default_rng(seed + 1)
    queue: list[tuple[int, int, Event]] = []
    seq = 0
    for s in SYMBOLS:
        for ev in _release_events(s, f"{s}-r0", T0, rng):
            queue.append((T0, seq, ev))
            seq += 1
    for ev in inputs(seed, hours):
        queue.append((ev.ts_event, seq, ev))
        seq += 1
    heapq.heapify(queue)
    state, log, live = State(), [], []
    while queue:
        t, _, ev = heapq.heappop(queue)
        log.append(ev)
        state, out = decide(state, ev, t, config)
        live += out
        for cmd in out:
            if cmd.kind != "retrain":
                continue
            log.append(decision_event(cmd, ev))
            run = f"run-{cmd.id[:8]}"
            follow = [
                (t + 5 * MIN, TrainingStarted(event_id=f"st-{run}", ts_event=t + 5 * MIN,
                                              ts_init=t + 5 * MIN, symbol=cmd.symbol, run_id=run,
                                              trainer="lgbm")),
                (t + 45 * MIN, TrainingFinished(event_id=f"fin-{run}", ts_event=t + 45 * MIN,
                                                ts_init=t + 45 * MIN, symbol=cmd.symbol,
                                                run_id=run, trainer="lgbm", succeeded=True)),
            ]
            follow += [(t + 46 * MIN, e) for e in _release_events(cmd.symbol, run, t + 46 * MIN, rng)]
            for when, e in follow:
                heapq.heappush(queue, (when, seq, e))
                seq += 1
    return log, live


@pytest.fixture(scope="module")
def sim() -> tuple[list[Event], list[Command]]:
    return simulate(policy())


def test_simulation_exercises_every_trigger(sim: tuple[list[Event], list[Command]]) -> None:
    log, live = sim
    retrains = {c.reason for c in live if c.kind == "retrain"}
    assert {"schedule", "manual", "degradation", "drift.psi"} <= retrains
    assert retrains & {"drift.adwin", "drift.page_hinkley"}
    assert {c.reason for c in live if c.kind == "suppressed"} >= {
        "suppressed.cooldown", "suppressed.max_concurrent"
    }


def test_replay_reproduces_the_live_decisions(sim: tuple[list[Event], list[Command]]) -> None:
    log, live = sim
    result = replay_decisions(log, policy())
    assert encode_commands(result.commands()) == encode_commands(live)
    assert verify_recorded(log, result) == sum(c.kind == "retrain" for c in live)
    again = replay_decisions(log, policy())
    assert again.digest == result.digest and len(result.digest) == 64
    without_records = [e for e in log if not isinstance(e, DecisionMade)]
    # recorded decisions are ignored by the core; only the indices move
    assert encode_commands(replay_decisions(without_records, policy()).commands()) == (
        encode_commands(live)
    )


def test_verify_recorded_catches_a_tampered_record(sim: tuple[list[Event], list[Command]]) -> None:
    log, _ = sim
    result = replay_decisions(log, policy())
    i = next(i for i, e in enumerate(log) if isinstance(e, DecisionMade))
    forged = msgspec.structs.replace(log[i], reason="schedule" if log[i].reason != "schedule" else "manual")
    with pytest.raises(ReplayMismatch, match="differs"):
        verify_recorded(log[:i] + [forged] + log[i + 1 :], result)
    with pytest.raises(ReplayMismatch, match="not in the log"):
        verify_recorded(log[:i] + log[i + 1 :], result)


@pytest.mark.parametrize("fraction", [0.1, 0.37, 0.5, 0.83])
def test_checkpoint_restore_continue_is_identical(
    sim: tuple[list[Event], list[Command]], fraction: float
) -> None:
    log, _ = sim
    config = policy()
    k = int(len(log) * fraction)
    full = State()
    full_out: list[Command] = []
    for ev in log:
        full, out = decide(full, ev, ev.ts_event, config)
        full_out += out

    head = State()
    resumed_out: list[Command] = []
    for ev in log[:k]:
        head, out = decide(head, ev, ev.ts_event, config)
        resumed_out += out
    checkpoint = head.to_bytes()
    restored = State.from_bytes(checkpoint)
    assert restored.to_bytes() == checkpoint
    for ev in log[k:]:
        restored, out = decide(restored, ev, ev.ts_event, config)
        resumed_out += out
    assert encode_commands(resumed_out) == encode_commands(full_out)
    assert restored.to_bytes() == full.to_bytes()
    assert any(s.detectors for s in restored.data.symbols.values())  # detectors were carried


def test_digest_is_stable_across_processes(
    sim: tuple[list[Event], list[Command]], tmp_path: Path
) -> None:
    log, _ = sim
    path = tmp_path / "log.msgpack"
    path.write_bytes(msgspec.msgpack.encode([encode(e) for e in log]))
    here = replay_decisions([decode(b) for b in msgspec.msgpack.decode(path.read_bytes())], policy())
    (tmp_path / "policy.json").write_bytes(msgspec.json.encode(policy()))
    script = (
        "import sys, msgspec\n"
        "from autoopt.config import PolicyConfig\n"
        "from autoopt.core import replay_decisions\n"
        "from autoopt.events import decode\n"
        "raw = msgspec.msgpack.decode(open(sys.argv[1], 'rb').read())\n"
        "cfg = msgspec.json.decode(open(sys.argv[2], 'rb').read(), type=PolicyConfig)\n"
        "print(replay_decisions([decode(b) for b in raw], cfg).digest)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path), str(tmp_path / "policy.json")],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert done.stdout.strip() == here.digest


def test_diff_between_two_configs_says_where_and_why(
    sim: tuple[list[Event], list[Command]],
) -> None:
    log, _ = sim
    strict = replay_decisions(log, policy())
    lax = replay_decisions(
        log, policy(degradation=DegradationPolicy(threshold=0.5, window=6), schedule=None)
    )
    assert strict.digest != lax.digest
    diffs = diff_decisions(strict, lax)
    assert diffs
    first_degr = next(d for d in diffs if any(c.reason == "degradation" for c in d.a))
    assert [c.reason for c in first_degr.a] == ["degradation"]
    assert [c.reason for c in first_degr.b] == ["held.degradation"]  # same drop, laxer threshold
    assert first_degr.a[0].details["metrics"]["accuracy"]["drop"] == (
        first_degr.b[0].details["metrics"]["accuracy"]["drop"]
    )
    assert "> 5.0%" in first_degr.explanation and "<= 50.0%" in first_degr.explanation
    assert all(strict.decisions[0].index <= d.index for d in diffs)
    sched = [d for d in diffs if any(c.reason == "schedule" for c in d.a)]
    assert sched and all(not any(c.reason == "schedule" for c in d.b) for d in sched)
    assert diff_decisions(strict, strict) == []
    assert diff_decisions(strict, replay_decisions(log, policy()), compare="exact") == []


def test_diff_refuses_results_of_different_logs(sim: tuple[list[Event], list[Command]]) -> None:
    log, _ = sim
    a = replay_decisions(log, policy())
    b = replay_decisions(log[:-1], policy())
    with pytest.raises(ReplayMismatch, match="different logs"):
        diff_decisions(a, b)


def test_recorded_clock_pairs_override_event_time() -> None:
    ev = BarBatch.from_arrays(
        symbol="BTC", timeframe="1h", ts=[T0], open=[1.0], high=[1.0], low=[1.0], close=[1.0],
        volume=[1.0], event_id="bar-0", ts_event=T0, ts_init=T0,
    )
    later = msgspec.structs.replace(ev, event_id="bar-1")
    cfg = policy(schedule="0 3 * * *")
    by_event_time = replay_decisions([ev, later], cfg)
    by_recorded = replay_decisions([(ev, T0), (later, T0 + 4 * 60 * MIN)], cfg)
    assert by_event_time.decisions == []
    assert [c.reason for c in by_recorded.commands()] == ["schedule"]
    assert by_event_time.log_digest != by_recorded.log_digest


def test_corrupt_checkpoint_is_a_data_error() -> None:
    with pytest.raises(DataError, match="checkpoint"):
        State.from_bytes(b"\x93garbage")
    bad_version = msgspec.msgpack.encode({"version": 99})
    with pytest.raises(DataError, match="version 99"):
        State.from_bytes(bad_version)


_ACTIONS = ("metrics", "metrics_bad", "start", "finish", "release", "manual", "bar", "rollback")


@st.composite
def _logs(draw: st.DrawFn) -> list[Event]:
    """Random interleavings of guard- and policy-relevant events over three symbols."""
    steps = draw(st.lists(
        st.tuples(st.sampled_from(_ACTIONS), st.sampled_from(("A", "B", "C")),
                  st.integers(0, 3 * 3600)),
        min_size=1, max_size=60,
    ))
    t, out = T0, []
    for n, (action, s, dt) in enumerate(steps):
        t += dt * NS_PER_S
        common = dict(event_id=f"h{n}", ts_event=t, ts_init=t, symbol=s)
        if action.startswith("metrics"):
            acc = 0.60 if action == "metrics_bad" else 0.70
            out.append(MetricsReported(**common, window="1h",
                                       metrics={"accuracy": acc, "precision": 0.68,
                                                "sharpe": 1.5}))
        elif action == "start":
            out.append(TrainingStarted(**common, run_id=f"run-{s}", trainer="lgbm"))
        elif action == "finish":
            out.append(TrainingFinished(**common, run_id=f"run-{s}", trainer="lgbm",
                                        succeeded=True))
        elif action == "release":
            out.append(ModelReleased(**common, release_id=f"{s}-{n}", model_type="lgbm",
                                     sha256="0" * 64, uri="x",
                                     metrics={"accuracy": 0.7, "precision": 0.68}))
            out.append(ModelPromoted(**{**common, "event_id": f"h{n}p"}, release_id=f"{s}-{n}"))
        elif action == "rollback":
            out.append(ModelRolledBack(**common, release_id=f"{s}-0", from_release_id="x"))
        elif action == "manual":
            out.append(RetrainRequested(**common, reason="manual"))
        else:
            out.append(BarBatch.from_arrays(symbol=s, timeframe="1h", ts=[t], open=[1.0],
                                            high=[1.0], low=[1.0], close=[1.0], volume=[1.0],
                                            event_id=f"h{n}", ts_event=t, ts_init=t))
    return out


@settings(max_examples=60, deadline=None)
@given(log=_logs(), cut=st.floats(0.0, 1.0))
def test_checkpoint_anywhere_in_random_logs(log: list[Event], cut: float) -> None:
    config = policy(
        schedule="0 */4 * * *", cooldown_s=1800.0, max_concurrent=2, pending_timeout_s=7200.0,
        running_timeout_s=5 * 3600.0, degradation=DegradationPolicy(window=2),
    )
    full = replay_decisions(log, config)
    k = int(len(log) * cut)
    head_state = State()
    replay_decisions(log[:k], config, state=head_state)
    restored = State.from_bytes(head_state.to_bytes())
    tail = replay_decisions(log[k:], config, state=restored)
    assert encode_commands(tail.commands()) == encode_commands(
        [c for r in full.decisions if r.index >= k for c in r.commands]
    )
    rebuilt = State()
    replay_decisions(log, config, state=rebuilt)
    assert restored.to_bytes() == rebuilt.to_bytes()
