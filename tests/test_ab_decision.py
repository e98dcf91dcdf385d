"""Decision rules (promote / roll back / keep) and how decisions are written to the log."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from autoopt.ab.decision import DecisionApplier, decide
from autoopt.ab.experiments import (
    ExperimentBook,
    ExperimentService,
    ExperimentSpec,
    Guardrails,
)
from autoopt.ab.tracking import OutcomeTracker
from autoopt.clock import SimulatedClock
from autoopt.events import (
    DecisionMade,
    ExperimentConcluded,
    ExperimentStarted,
    ModelPromoted,
    VariantAssigned,
    VariantSpec,
)
from autoopt.log import EventLog
from autoopt.registry import ModelRegistry
from autoopt.testing.releases import tiny_release

T0 = 1_700_000_000_000_000_000


def _book(**kw: object) -> ExperimentBook:
    fields: dict[str, object] = {
        "name": "e1",
        "symbol": "BTCUSDT",
        "variants": [
            VariantSpec(name="control", release_id="r1", weight=0.5),
            VariantSpec(name="chal", release_id="r2", weight=0.5),
        ],
        "guardrails": Guardrails(max_drawdown=0.5, max_loss_streak=15, max_error_rate=0.2),
        "min_samples": 100,
        "max_duration_s": 86_400.0,
        "sequential_tuning": 2000.0,
    }
    fields.update(kw)
    book = ExperimentBook()
    book.apply(ExperimentSpec(**fields).to_event())  # type: ignore[arg-type]
    book.apply(ExperimentStarted.new(experiment="e1", ts_event=T0, ts_init=T0))
    return book


def _feed(tracker: OutcomeTracker, variant: str, returns: np.ndarray) -> None:
    st = tracker.variant("e1", variant)
    for r in returns:
        st.add_trade(float(r), float(r) * 1000)
        st.routed += 1


def _assign(book: ExperimentBook, counts: dict[str, int]) -> None:
    for variant, n in counts.items():
        for i in range(n):
            book.apply(VariantAssigned.new(experiment="e1", unit_key=f"{variant}{i}",
                                           variant=variant, bucket=0.5))  # fmt: skip


def test_keeps_collecting_below_min_samples() -> None:
    book, tr = _book(), OutcomeTracker()
    rng = np.random.default_rng(1)
    _feed(tr, "control", rng.normal(0, 0.01, 50))
    _feed(tr, "chal", rng.normal(0.01, 0.01, 50))  # clearly better, but too few trades
    d = decide(book.get("e1"), tr, T0)
    assert d.action == "keep" and "collecting" in d.reason
    assert d.statistics["comparisons"]["chal"]["welch"]["p_value"] < 1e-6


def test_promotes_a_significantly_better_challenger() -> None:
    book, tr = _book(), OutcomeTracker()
    rng = np.random.default_rng(2)
    _feed(tr, "control", rng.normal(0.0, 0.01, 800))
    _feed(tr, "chal", rng.normal(0.003, 0.01, 800))
    d = decide(book.get("e1"), tr, T0)
    assert d.action == "promote" and d.variant == "chal"
    cmp = d.statistics["comparisons"]["chal"]
    assert cmp["sequential"]["significant"] and cmp["sequential"]["diff"] > 0
    assert cmp["sharpe_ci"]["ci_low"] > 0
    assert cmp["mann_whitney"]["p_value"] < 0.01
    assert d.statistics["srm"]["mismatch"] is False
    assert d.statistics["variants"]["chal"]["n"] == 800


def test_rolls_back_a_significantly_worse_challenger() -> None:
    book, tr = _book(), OutcomeTracker()
    rng = np.random.default_rng(3)
    _feed(tr, "control", rng.normal(0.003, 0.01, 800))
    _feed(tr, "chal", rng.normal(0.0, 0.01, 800))
    d = decide(book.get("e1"), tr, T0)
    assert d.action == "rollback" and d.variant == "chal" and "worse" in d.reason


def test_guardrail_rolls_back_before_min_samples() -> None:
    book, tr = _book(guardrails=Guardrails(max_loss_streak=6, max_error_rate=0.2)), OutcomeTracker()
    _feed(tr, "control", np.full(10, 0.001))
    _feed(tr, "chal", np.array([0.01, -0.01, -0.01, -0.01, -0.01, -0.01, -0.01]))
    d = decide(book.get("e1"), tr, T0)
    assert d.action == "rollback" and "loss streak 6 >= max_loss_streak 6" in d.reason
    tr.variant("e1", "chal").errors = 0
    book2, tr2 = _book(), OutcomeTracker()
    _feed(tr2, "chal", np.full(30, 0.001))
    tr2.variant("e1", "chal").errors = 7  # 7/30 > 0.2
    assert "error rate" in decide(book2.get("e1"), tr2, T0).reason


def test_sample_ratio_mismatch_blocks_promotion() -> None:
    book, tr = _book(unit="account"), OutcomeTracker()
    rng = np.random.default_rng(2)
    _feed(tr, "control", rng.normal(0.0, 0.01, 800))
    _feed(tr, "chal", rng.normal(0.003, 0.01, 800))
    _assign(book, {"control": 1000, "chal": 800})  # account units: VariantAssigned counts
    d = decide(book.get("e1"), tr, T0)
    assert d.action == "keep" and "sample ratio mismatch" in d.reason
    signal_units, tr2 = _book(), OutcomeTracker()  # signal units: each live route counts
    _feed(tr2, "control", rng.normal(0.0, 0.01, 800))
    _feed(tr2, "chal", rng.normal(0.003, 0.01, 800))
    tr2.variant("e1", "control").routed = 1000
    assert "sample ratio mismatch" in decide(signal_units.get("e1"), tr2, T0).reason


def test_max_duration_concludes_without_winner() -> None:
    book, tr = _book(max_duration_s=60.0), OutcomeTracker()
    rng = np.random.default_rng(4)
    _feed(tr, "control", rng.normal(0.0, 0.01, 150))
    _feed(tr, "chal", rng.normal(0.0, 0.01, 150))
    assert decide(book.get("e1"), tr, T0 + 30 * 10**9).action == "keep"
    d = decide(book.get("e1"), tr, T0 + 61 * 10**9)
    assert d.action == "conclude" and d.variant is None


async def test_auto_decision_concludes_and_promotes(event_log: EventLog, tmp_path: Path) -> None:
    """The promotion switches the registry's current before ModelPromoted (one promotion path);
    a winner whose release the log never recorded is refused: concluded without a winner."""
    clock = SimulatedClock(T0)
    registry = ModelRegistry(tmp_path)
    r1 = await tiny_release(registry, event_log, "BTCUSDT", 1)
    r2 = await tiny_release(registry, event_log, "BTCUSDT", 2, parent=r1)
    registry.set_current("BTCUSDT", r1)
    svc = ExperimentService(event_log, ExperimentBook(), clock=clock)
    spec = ExperimentSpec(
        name="auto",
        symbol="BTCUSDT",
        variants=[
            VariantSpec(name="control", release_id=r1, weight=0.5),
            VariantSpec(name="chal", release_id=r2, weight=0.5),
        ],
        min_samples=100,
        auto_decide=True,
    )
    await svc.create(spec)
    await svc.start("auto")
    tr = OutcomeTracker()
    rng = np.random.default_rng(2)
    for name, mu in (("control", 0.0), ("chal", 0.003)):
        st = tr.variant("auto", name)
        for r in rng.normal(mu, 0.01, 800):
            st.add_trade(float(r), float(r))
    d = decide(svc.book.get("auto"), tr, clock.now_ns())
    written = await DecisionApplier(svc, clock=clock, registry=registry).apply(d)
    assert [type(e) for e in written] == [ExperimentConcluded, ModelPromoted]
    rebuilt = await ExperimentBook.rebuild(event_log)
    assert rebuilt.get("auto").status == "concluded" and rebuilt.get("auto").winner == "chal"
    assert rebuilt.get("auto").statistics["comparisons"]["chal"]["sequential"]["significant"]
    promoted = [e async for e in event_log.replay("MODELS") if isinstance(e, ModelPromoted)]
    assert promoted == [written[1]]
    assert promoted[0].release_id == r2 and promoted[0].previous_release_id == r1
    assert registry.current("BTCUSDT") == r2  # watchers and the registry agree

    await svc.create(msgspec.structs.replace(spec, name="ghost", variants=[
        VariantSpec(name="control", release_id=r2, weight=0.5),
        VariantSpec(name="chal", release_id="never-released", weight=0.5)]))
    await svc.start("ghost")
    for name, mu in (("control", 0.0), ("chal", 0.003)):
        st = tr.variant("ghost", name)
        for r in rng.normal(mu, 0.01, 800):
            st.add_trade(float(r), float(r))
    d = decide(svc.book.get("ghost"), tr, clock.now_ns())
    assert d.action == "promote"
    written = await DecisionApplier(svc, clock=clock, registry=registry).apply(d)
    assert [type(e) for e in written] == [ExperimentConcluded]
    assert written[0].winner is None and "promotion refused" in written[0].reason
    assert "never-released has no ModelReleased" in written[0].reason
    assert registry.current("BTCUSDT") == r2


async def test_manual_decision_is_a_recommendation_written_once(event_log: EventLog) -> None:
    svc = ExperimentService(event_log, ExperimentBook())
    await svc.create(
        ExperimentSpec(
            name="manual",
            symbol="ETHUSDT",
            variants=[
                VariantSpec(name="control", release_id="r1", weight=0.5),
                VariantSpec(name="chal", release_id="r2", weight=0.5),
            ],
            guardrails=Guardrails(max_loss_streak=3),
        )
    )
    await svc.start("manual")
    tr = OutcomeTracker()
    _st = tr.variant("manual", "chal")
    for r in (-0.01, -0.02, -0.01):
        _st.add_trade(r, r)
    applier = DecisionApplier(svc)
    for _ in range(2):
        d = decide(svc.book.get("manual"), tr, 0)
        written = await applier.apply(d)
        assert [type(e) for e in written] == [DecisionMade]
    recs = [e async for e in event_log.replay("DECISIONS")]
    assert len(recs) == 1 and recs[0].kind == "ab.rollback"
    assert recs[0].details["statistics"]["variants"]["chal"]["max_loss_streak"] == 3
    assert svc.book.get("manual").status == "running"  # only recommended
    assert pytest.approx(recs[0].details["statistics"]["variants"]["chal"]["pnl"]) == -0.04
