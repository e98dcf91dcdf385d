"""Decision-core throughput on a replayed stream of mixed events (events/s).

Run: ``python -m pytest benches/bench_core.py --benchmark-only --benchmark-columns=min,median,ops``

Groups (each side by side with its peer in the same run):
    core-stream       `decide` over a 20k-event mixed stream (4 symbols: signals, outcomes,
                      bars, 60-row feature batches, metrics, releases with references, training
                      runs), and `replay_decisions` over it (adds the digest).
    core-vs-scratch   the incremental core vs the same policies recomputed from scratch for
                      every event (rebuild the state from the log prefix, then decide), on the
                      first 400 events; both give the same outputs (checked before timing).
    core-restart      getting the state back at the end of the 20k log: restore a checkpoint
                      vs replay the whole log.
An ``ops`` of 1/s for one pass over N events means N events/s; the per-event rates are printed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from autoopt.clock import NS_PER_S
from autoopt.config import DriftPolicy, PolicyConfig
from autoopt.core import State, decide, encode_commands, replay_decisions
from autoopt.events import (
    BarBatch,
    Event,
    FeatureBatch,
    MetricsReported,
    ModelPromoted,
    ModelReleased,
    SignalEmitted,
    TradeOutcome,
    TrainingFinished,
    TrainingStarted,
)

T0 = 1_704_067_200 * NS_PER_S
SEC = NS_PER_S
SYMBOLS = ("BTC", "ETH", "SOL", "XRP")
N_EVENTS = 20_000
N_SCRATCH = 400

CONFIG = PolicyConfig(cooldown_s=3600.0, max_concurrent=2, drift=DriftPolicy(min_rows=240))


def _features(sym: str, t: int, rows: int, shift: float, rng: np.random.Generator, **kw: Any):
    return FeatureBatch.from_arrays(
        symbol=sym, feature_set="default", ts=t - np.arange(rows, 0, -1) * SEC,
        columns={f"f{i}": rng.normal(shift, 1.0, rows) for i in range(4)},
        ts_event=t, ts_init=t, **kw,
    )


def mixed_stream(n: int, seed: int = 0) -> list[Event]:
    """A deterministic mixed stream, one event every 5 s, regime shift half-way."""
    rng = np.random.default_rng(seed)
    out: list[Event] = []
    for s in SYMBOLS:
        out += [
            ModelReleased(event_id=f"rel-{s}", ts_event=T0, ts_init=T0, symbol=s,
                          release_id=f"{s}-r0", model_type="lgbm", sha256="0" * 64, uri="x",
                          metrics={"accuracy": 0.7, "precision": 0.68, "sharpe": 1.5}),
            ModelPromoted(event_id=f"pro-{s}", ts_event=T0, ts_init=T0, symbol=s,
                          release_id=f"{s}-r0"),
            _features(s, T0, 2000, 0.0, rng, event_id=f"ref-{s}", release_id=f"{s}-r0"),
        ]
    i = 0
    while len(out) < n:
        t = T0 + i * 5 * SEC
        s = SYMBOLS[i % len(SYMBOLS)]
        late = i > n // 2
        roll = rng.random()
        eid = f"e{i}"
        if roll < 0.6:
            out.append(SignalEmitted(event_id=eid, ts_event=t, ts_init=t, symbol=s,
                                     signal_id=eid, side="long",
                                     confidence=float(rng.normal(0.7 if late else 0.55, 0.05))))
        elif roll < 0.8:
            r = float(rng.normal(0.0005, 0.01))
            out.append(TradeOutcome(event_id=eid, ts_event=t, ts_init=t, symbol=s, trade_id=eid,
                                    side="long", qty=1.0, entry_price=100.0,
                                    exit_price=100 * (1 + r), fees=0.0, pnl=100 * r, return_=r))
        elif roll < 0.88:
            out.append(BarBatch.from_arrays(symbol=s, timeframe="1m", ts=[t], open=[1.0],
                                            high=[1.0], low=[1.0], close=[1.0], volume=[1.0],
                                            event_id=eid, ts_event=t, ts_init=t))
        elif roll < 0.92:
            out.append(_features(s, t, 60, 0.8 if late else 0.0, rng, event_id=eid))
        elif roll < 0.995:
            acc = 0.7 - (0.05 if late else 0.0) + float(rng.normal(0, 0.01))
            out.append(MetricsReported(event_id=eid, ts_event=t, ts_init=t, symbol=s,
                                       window="1h", metrics={"accuracy": acc,
                                                             "precision": acc - 0.02,
                                                             "sharpe": 1.5}))
        else:
            run = f"run-{i}"
            out.append(TrainingStarted(event_id=eid, ts_event=t, ts_init=t, symbol=s,
                                       run_id=run, trainer="lgbm"))
            out.append(TrainingFinished(event_id=eid + "f", ts_event=t + SEC, ts_init=t + SEC,
                                        symbol=s, run_id=run, trainer="lgbm", succeeded=True))
        i += 1
    return out[:n]


@pytest.fixture(scope="module")
def stream() -> list[Event]:
    return mixed_stream(N_EVENTS)


def run_core(events: list[Event]) -> tuple[State, list[Any]]:
    state, outs = State(), []
    for ev in events:
        state, out = decide(state, ev, ev.ts_event, CONFIG)
        outs += out
    return state, outs


def run_from_scratch(events: list[Event]) -> list[Any]:
    """The naive peer: keep only the log; for each event rebuild the state, then decide it."""
    outs: list[Any] = []
    for k, ev in enumerate(events):
        state = State()
        for prior in events[:k]:
            state, _ = decide(state, prior, prior.ts_event, CONFIG)
        state, out = decide(state, ev, ev.ts_event, CONFIG)
        outs += out
    return outs


def _rate(benchmark: Any, n: int, label: str) -> None:
    per_s = n / benchmark.stats.stats.median
    benchmark.extra_info["events_per_s"] = per_s
    print(f"\n{label}: {per_s:,.0f} events/s over {n} events")


@pytest.mark.benchmark(group="core-stream")
def test_bench_decide_mixed_stream(benchmark: Any, stream: list[Event]) -> None:
    state, outs = benchmark.pedantic(run_core, args=(stream,), rounds=3, iterations=1)
    assert any(c.kind == "retrain" for c in outs)
    _rate(benchmark, len(stream), "decide, mixed stream")
    print(f"outputs: {len(outs)}, checkpoint: {len(state.to_bytes()):,} bytes")


@pytest.mark.benchmark(group="core-stream")
def test_bench_replay_with_digest(benchmark: Any, stream: list[Event]) -> None:
    result = benchmark.pedantic(
        replay_decisions, args=(stream, CONFIG), rounds=3, iterations=1
    )
    assert len(result.digest) == 64
    _rate(benchmark, len(stream), "replay_decisions (with digest)")


@pytest.mark.benchmark(group="core-vs-scratch")
def test_bench_incremental(benchmark: Any, stream: list[Event]) -> None:
    head = stream[:N_SCRATCH]
    assert encode_commands(run_core(head)[1]) == encode_commands(run_from_scratch(head))
    benchmark.pedantic(run_core, args=(head,), rounds=5, iterations=1)
    _rate(benchmark, N_SCRATCH, "incremental core")


@pytest.mark.benchmark(group="core-vs-scratch")
def test_bench_from_scratch_peer(benchmark: Any, stream: list[Event]) -> None:
    benchmark.pedantic(run_from_scratch, args=(stream[:N_SCRATCH],), rounds=1, iterations=1)
    _rate(benchmark, N_SCRATCH, "from-scratch peer")


@pytest.mark.benchmark(group="core-restart")
def test_bench_restore_checkpoint(benchmark: Any, stream: list[Event]) -> None:
    state, _ = run_core(stream)
    raw = state.to_bytes()
    restored = benchmark.pedantic(State.from_bytes, args=(raw,), rounds=20, iterations=1)
    assert restored.to_bytes() == raw


@pytest.mark.benchmark(group="core-restart")
def test_bench_rebuild_by_replay(benchmark: Any, stream: list[Event]) -> None:
    raw = run_core(stream)[0].to_bytes()
    state, _ = benchmark.pedantic(run_core, args=(stream,), rounds=3, iterations=1)
    assert state.to_bytes() == raw
