"""Decision-core policies and guards, driven by realistic event sequences through `decide`.

The core is pure, so these tests need no server: events are built exactly as producers build
them and fed with the clock a replay would use.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest

from autoopt.clock import NS_PER_S
from autoopt.config import (
    DegradationPolicy,
    DriftPolicy,
    PolicyConfig,
    SymbolPolicy,
    load_config,
)
from autoopt.core import (
    Command,
    State,
    command_from_decision,
    decide,
    decision_event,
    encode_commands,
)
from autoopt.events import (
    BarBatch,
    DecisionMade,
    DriftReported,
    Event,
    FeatureBatch,
    MetricsReported,
    ModelPromoted,
    ModelReleased,
    RetrainRequested,
    SignalEmitted,
    TradeOutcome,
    TrainingFinished,
    TrainingStarted,
)

T0 = 1_704_067_200 * NS_PER_S  # 2024-01-01 00:00:00 UTC
HOUR = 3600 * NS_PER_S


class Feed:
    """Builds events the way producers do (deterministic ids) and decides them at `now`."""

    def __init__(self, config: Any, start: int = T0) -> None:
        self.config = config
        self.state = State()
        self.now = start
        self.events: list[Event] = []

    def at(self, hours: float) -> Feed:
        self.now = T0 + int(hours * HOUR)
        return self

    def build(self, cls: type[Event], **fields: Any) -> Event:
        fields.setdefault("event_id", f"ev-{len(self.events):06d}")
        fields.setdefault("ts_event", self.now)
        fields.setdefault("ts_init", self.now)
        return cls.new(**fields)

    def send(self, cls: type[Event], **fields: Any) -> list[Command]:
        return self.deliver(self.build(cls, **fields))

    def deliver(self, ev: Event) -> list[Command]:
        self.events.append(ev)
        self.state, out = decide(self.state, ev, self.now, self.config)
        return out

    # shorthands -------------------------------------------------------------------------
    def metrics(self, symbol: str, **m: float) -> list[Command]:
        return self.send(MetricsReported, symbol=symbol, window="1d", metrics=m)

    def release(self, symbol: str, rid: str, **m: float) -> list[Command]:
        out = self.send(
            ModelReleased, symbol=symbol, release_id=rid, model_type="lgbm", sha256="0" * 64,
            uri=f"file:///models/{symbol}/{rid}", metrics=m,
        )
        return out + self.send(ModelPromoted, symbol=symbol, release_id=rid)

    def started(self, symbol: str, run: str) -> list[Command]:
        return self.send(TrainingStarted, symbol=symbol, run_id=run, trainer="lgbm")

    def finished(self, symbol: str, run: str) -> list[Command]:
        return self.send(
            TrainingFinished, symbol=symbol, run_id=run, trainer="lgbm", succeeded=True
        )

    def manual(self, symbol: str, **fields: Any) -> list[Command]:
        return self.send(
            RetrainRequested, symbol=symbol, reason="manual", requested_by="ops", **fields
        )

    def bar(self, symbol: str) -> list[Command]:
        """A one-bar BarBatch: market data is what keeps arriving while nothing else happens."""
        return self.deliver(BarBatch.from_arrays(
            symbol=symbol, timeframe="1h", ts=[self.now], open=[1.0], high=[1.0], low=[1.0],
            close=[1.0], volume=[1.0], event_id=f"ev-{len(self.events):06d}",
            ts_event=self.now, ts_init=self.now,
        ))

    def signal(self, symbol: str, confidence: float) -> list[Command]:
        return self.send(
            SignalEmitted, symbol=symbol, signal_id=f"s{len(self.events)}", side="long",
            confidence=confidence,
        )

    def features(self, symbol: str, cols: dict[str, np.ndarray], **fields: Any) -> list[Command]:
        n = len(next(iter(cols.values())))
        ts = self.now - np.arange(n, 0, -1, dtype=np.int64)
        ev = FeatureBatch.from_arrays(
            symbol=symbol, feature_set="default", ts=ts, columns=cols,
            event_id=f"ev-{len(self.events):06d}", ts_event=self.now, ts_init=self.now, **fields,
        )
        return self.deliver(ev)


def no_schedule(**kw: Any) -> PolicyConfig:
    return PolicyConfig(schedule=None, **kw)


def reasons(out: list[Command]) -> list[str]:
    return [c.reason for c in out]


CLASSIC = {"accuracy": 0.70, "precision": 0.68, "sharpe": 1.5}
RECENT = {"accuracy": 0.65, "precision": 0.64, "sharpe": 1.4}


# ------------------------------------------------------------------------------- schedule


def test_schedule_fires_when_the_clock_crosses_the_cron_instant() -> None:
    feed = Feed(PolicyConfig(schedule="0 3 * * *", cooldown_s=0.0))
    assert feed.at(0).bar("BTC") == []  # registers BTC at 00:00
    assert feed.at(2.99).bar("BTC") == []  # 02:59:24, before the instant
    out = feed.at(3.0).bar("BTC")  # exactly 03:00:00: (last, now] holds it
    assert [(c.kind, c.reason) for c in out] == [("retrain", "schedule")]
    assert out[0].details["instant_ns"] == T0 + 3 * HOUR
    feed.finished("BTC", "none")
    feed.started("BTC", "r1")
    feed.finished("BTC", "r1")
    assert feed.at(4).bar("BTC") == []  # same day: no new instant crossed


def test_a_symbol_can_turn_the_global_schedule_off() -> None:
    from autoopt.config import SymbolPolicy

    policy = PolicyConfig(
        schedule="0 3 * * *", cooldown_s=0.0, max_concurrent=5,
        symbols={"BTC": SymbolPolicy(schedule="off")},
    )
    feed = Feed(policy)
    feed.at(0).bar("BTC")
    feed.at(0).bar("ETH")
    out = feed.at(3.5).bar("ETH")
    assert [(c.symbol, c.reason) for c in out] == [("ETH", "schedule")]


def test_schedule_fires_once_after_a_quiet_gap() -> None:
    feed = Feed(PolicyConfig(schedule="0 3 * * *", cooldown_s=0.0))
    feed.at(1).bar("BTC")
    out = feed.at(24 * 3 + 5).bar("BTC")  # crossed Jan 1, 2, 3 and 4 at 03:00
    assert reasons(out) == ["schedule"]
    assert out[0].details["instant_ns"] == T0 + 3 * HOUR
    assert out[0].details["latest_ns"] == T0 + (72 + 3) * HOUR


def test_schedule_counts_from_when_a_symbol_is_first_seen() -> None:
    feed = Feed(PolicyConfig(schedule="0 3 * * *"))
    assert feed.at(3.5).bar("ETH") == []  # 03:00 passed before ETH existed
    assert reasons(feed.at(27).bar("ETH")) == ["schedule"]


def test_configured_symbols_are_scheduled_without_their_own_events() -> None:
    config = load_config(environ={}, overrides={"symbols": ["BTC", "ETH"]})
    feed = Feed(config)
    feed.at(1).bar("SOL")
    out = feed.at(3.5).bar("SOL")
    assert [(c.kind, c.symbol, c.reason) for c in out] == [
        ("retrain", "BTC", "schedule"),
        ("suppressed", "ETH", "suppressed.max_concurrent"),  # max_concurrent = 1
        ("suppressed", "SOL", "suppressed.max_concurrent"),
    ]


# ---------------------------------------------------------------------------- degradation


def test_degradation_classic_case() -> None:
    """Baseline 0.70 / 0.68 / 1.5, recent 0.65 / 0.64 / 1.4, threshold 0.05 → degraded."""
    cfg = no_schedule(degradation=DegradationPolicy(threshold=0.05, window=5))
    feed = Feed(cfg)
    feed.release("BTC", "rel-1", **CLASSIC)
    feed.at(7)
    outs = [feed.metrics("BTC", **RECENT) for _ in range(5)]
    assert outs[:4] == [[], [], [], []]  # window not full yet
    (cmd,) = outs[4]
    assert (cmd.kind, cmd.reason) == ("retrain", "degradation")
    m = cmd.details["metrics"]
    assert m["accuracy"]["drop"] == pytest.approx(0.05 / 0.70)  # 7.1 %
    assert m["precision"]["drop"] == pytest.approx(0.04 / 0.68)  # 5.9 %
    assert m["sharpe"]["drop"] == pytest.approx(0.1 / 1.5)
    assert m["accuracy"]["baseline"] == 0.70 and m["accuracy"]["source"] == "release"
    assert cmd.details["degraded"] == ["accuracy", "precision", "sharpe"]
    assert cmd.details["champion"] == "rel-1"


def test_degradation_within_threshold_is_held_with_its_numbers() -> None:
    cfg = no_schedule(degradation=DegradationPolicy(threshold=0.10, window=3))
    feed = Feed(cfg)
    feed.release("BTC", "rel-1", **CLASSIC)
    feed.at(7)
    out = [feed.metrics("BTC", **RECENT) for _ in range(3)][-1]
    assert [(c.kind, c.reason) for c in out] == [("held", "held.degradation")]
    assert out[0].details["degraded"] == []
    assert out[0].details["metrics"]["accuracy"]["drop"] == pytest.approx(0.05 / 0.70)


def test_degradation_baseline_from_first_window_after_release() -> None:
    cfg = no_schedule(degradation=DegradationPolicy(threshold=0.05, window=2, metrics=["sharpe"]))
    feed = Feed(cfg)
    feed.release("BTC", "rel-1")  # no metrics on the release
    feed.at(7)
    feed.metrics("BTC", sharpe=1.5)
    out = feed.metrics("BTC", sharpe=1.5)
    assert reasons(out) == ["held.degradation.baseline"]
    assert out[0].details["baseline"] == {"sharpe": 1.5}
    feed.metrics("BTC", sharpe=1.5)
    out = feed.metrics("BTC", sharpe=1.3)  # window mean 1.4: 6.7 % below
    assert reasons(out) == ["degradation"]
    assert out[0].details["metrics"]["sharpe"]["source"] == "window"


def test_degradation_ignores_other_windows_and_other_releases() -> None:
    cfg = no_schedule(degradation=DegradationPolicy(window=1, source_window="1d"))
    feed = Feed(cfg)
    feed.release("BTC", "rel-1", **CLASSIC)
    feed.at(7)
    assert feed.send(MetricsReported, symbol="BTC", window="30d", metrics=RECENT) == []
    assert feed.send(
        MetricsReported, symbol="BTC", window="1d", metrics=RECENT, release_id="challenger"
    ) == []
    assert reasons(feed.metrics("BTC", **RECENT)) == ["degradation"]


def test_lower_is_better_metric_degrades_when_it_rises() -> None:
    cfg = no_schedule(
        degradation=DegradationPolicy(window=1, metrics=["logloss"], lower_is_better=["logloss"])
    )
    feed = Feed(cfg)
    feed.release("BTC", "rel-1", logloss=0.60)
    assert reasons(feed.at(7).metrics("BTC", logloss=0.62)) == ["held.degradation"]
    assert reasons(feed.metrics("BTC", logloss=0.70)) == ["degradation"]


# --------------------------------------------------------------------------------- guards


def test_nothing_fires_during_cooldown() -> None:
    cfg = no_schedule(cooldown_s=6 * 3600, degradation=DegradationPolicy(window=1))
    feed = Feed(cfg)
    feed.release("BTC", "rel-1", **CLASSIC)  # a release starts the cooldown too
    out = feed.at(1).metrics("BTC", **RECENT)
    assert [(c.kind, c.reason, c.trigger) for c in out] == [
        ("suppressed", "suppressed.cooldown", "degradation")
    ]
    assert out[0].details["remaining_s"] == pytest.approx(5 * 3600)
    for h in (2, 3, 4, 5, 5.99):
        assert [c.kind for c in feed.at(h).metrics("BTC", **RECENT)] == ["suppressed"]
    out = feed.at(6).metrics("BTC", **RECENT)
    assert reasons(out) == ["degradation"]
    feed.started("BTC", "run-1")
    feed.finished("BTC", "run-1")
    # the retrain decision at 06:00 starts a new cooldown
    assert reasons(feed.at(11).metrics("BTC", **RECENT)) == ["suppressed.cooldown"]
    assert reasons(feed.at(12).metrics("BTC", **RECENT)) == ["degradation"]


def test_running_and_pending_guards() -> None:
    cfg = no_schedule(cooldown_s=0.0, degradation=DegradationPolicy(window=1))
    feed = Feed(cfg)
    feed.release("BTC", "rel-1", **CLASSIC)
    feed.started("BTC", "nightly-1")  # a run started elsewhere
    out = feed.at(1).metrics("BTC", **RECENT)
    assert reasons(out) == ["suppressed.running"]
    assert out[0].details["run_ids"] == ["nightly-1"]
    feed.finished("BTC", "nightly-1")
    assert reasons(feed.metrics("BTC", **RECENT)) == ["degradation"]
    out = feed.metrics("BTC", **RECENT)  # decided, not yet started
    assert reasons(out) == ["suppressed.pending"]
    assert out[0].details["pending_reason"] == "degradation"


def test_max_concurrent_is_global() -> None:
    cfg = no_schedule(cooldown_s=0.0, max_concurrent=2, degradation=DegradationPolicy(window=1))
    feed = Feed(cfg)
    for s in ("A", "B", "C"):
        feed.release(s, f"rel-{s}", **CLASSIC)
    feed.at(1)
    assert reasons(feed.metrics("A", **RECENT)) == ["degradation"]
    feed.started("A", "run-a")
    assert reasons(feed.metrics("B", **RECENT)) == ["degradation"]
    out = feed.metrics("C", **RECENT)
    assert reasons(out) == ["suppressed.max_concurrent"]
    assert out[0].details["symbols"] == ["A", "B"]
    feed.finished("A", "run-a")
    assert reasons(feed.metrics("C", **RECENT)) == ["degradation"]
    assert feed.state.in_flight() == ["B", "C"]


def test_pending_retrain_expires_and_frees_its_slot() -> None:
    cfg = no_schedule(
        cooldown_s=0.0, pending_timeout_s=1800.0, degradation=DegradationPolicy(window=1)
    )
    feed = Feed(cfg)
    feed.release("A", "rel-a", **CLASSIC)
    feed.release("B", "rel-b", **CLASSIC)
    assert reasons(feed.at(1).metrics("A", **RECENT)) == ["degradation"]
    assert reasons(feed.at(1.25).metrics("B", **RECENT)) == ["suppressed.max_concurrent"]
    out = feed.at(1.5).metrics("B", **RECENT)  # A never started: slot freed, then B goes
    assert [(c.kind, c.symbol, c.reason) for c in out] == [
        ("expired", "A", "expired.pending"),
        ("retrain", "B", "degradation"),
    ]


# --------------------------------------------------------------------------------- manual


def test_manual_request_fires_once_and_bypasses_cooldown() -> None:
    feed = Feed(no_schedule(cooldown_s=6 * 3600))
    feed.release("BTC", "rel-1")
    req = feed.build(RetrainRequested, symbol="BTC", reason="manual", requested_by="alice")
    out = feed.at(1).deliver(req)
    assert [(c.kind, c.reason) for c in out] == [("retrain", "manual")]
    assert out[0].details["request_id"] == req.event_id
    assert out[0].details["satisfies"] == [req.event_id]
    feed.started("BTC", "run-1")
    feed.finished("BTC", "run-1")
    assert feed.deliver(req) == []  # redelivered: already decided


def test_manual_request_waits_for_the_running_retrain() -> None:
    feed = Feed(no_schedule())
    feed.started("BTC", "run-1")
    out = feed.at(1).manual("BTC")
    assert [(c.kind, c.reason, c.trigger) for c in out] == [
        ("suppressed", "suppressed.running", "manual")
    ]
    assert out[0].details["deferred"] is True
    assert feed.bar("BTC") == []  # still queued, not reported twice
    out = feed.at(2).finished("BTC", "run-1")
    assert reasons(out) == ["manual"]
    assert out[0].details["waited_s"] == pytest.approx(3600.0)


def test_manual_request_respects_cooldown_when_configured() -> None:
    feed = Feed(no_schedule(cooldown_s=3600.0, manual_bypasses_cooldown=False))
    feed.release("BTC", "rel-1")
    assert reasons(feed.at(0.5).manual("BTC")) == ["suppressed.cooldown"]
    assert feed.at(0.9).bar("BTC") == []
    assert reasons(feed.at(1).bar("BTC")) == ["manual"]


def test_a_policy_retrain_satisfies_queued_manual_requests() -> None:
    cfg = no_schedule(max_concurrent=1, cooldown_s=0.0, degradation=DegradationPolicy(window=1))
    feed = Feed(cfg)
    feed.release("A", "rel-a", **CLASSIC)
    feed.release("B", "rel-b", **CLASSIC)
    feed.started("A", "run-a")
    assert reasons(feed.at(1).manual("B")) == ["suppressed.max_concurrent"]
    feed.finished("A", "run-a")  # frees the slot: the queued manual request goes first
    assert feed.state.data.manual_queue == []
    assert feed.state.symbol("B").pending.reason == "manual"


def test_requests_of_any_reason_are_honoured_and_recorded_decisions_ignored() -> None:
    feed = Feed(no_schedule())
    feed.at(5)
    assert feed.send(DecisionMade, symbol="BTC", kind="retrain", reason="manual") == []
    assert feed.state.clock_ns == 0 and feed.state.data.symbols == {}
    out = feed.send(RetrainRequested, symbol="BTC", reason="desk: fills look off",
                    requested_by="engine")
    (retrain,) = [c for c in out if type(c).__name__ == "Retrain"]
    assert retrain.details["request_reason"] == "desk: fills look off"
    assert retrain.details["requested_by"] == "engine"


# ---------------------------------------------------------------------- per-symbol overrides


def test_per_symbol_overrides() -> None:
    cfg = PolicyConfig(
        schedule="0 3 * * *",
        degradation=DegradationPolicy(threshold=0.05, window=1),
        max_concurrent=4,
        symbols={
            "ETH": SymbolPolicy(
                schedule="0 */6 * * *",
                cooldown_s=0.0,
                degradation=DegradationPolicy(threshold=0.10, window=1),
            )
        },
    )
    feed = Feed(cfg)
    feed.at(0.5).release("BTC", "rel-b", **CLASSIC)
    feed.release("ETH", "rel-e", **CLASSIC)
    out = feed.at(1).metrics("BTC", **RECENT)
    assert reasons(out) == ["suppressed.cooldown"]  # BTC keeps the global 6 h cooldown
    assert reasons(feed.metrics("ETH", **RECENT)) == ["held.degradation"]  # 7.1 % <= 10 %
    out = feed.at(6).bar("SOL")  # crossed BTC's 03:00 (in cooldown) and ETH's 06:00
    assert [(c.symbol, c.reason, c.trigger) for c in out] == [
        ("BTC", "suppressed.cooldown", "schedule"),
        ("ETH", "schedule", "schedule"),
    ]
    feed.started("ETH", "run-e")
    feed.finished("ETH", "run-e")
    assert feed.at(9).bar("SOL") == []  # 09:00 is no instant of either
    assert reasons(feed.at(12).bar("SOL")) == ["schedule"]  # ETH again, cooldown 0


# ---------------------------------------------------------------------------------- drift


def _ref_feed(cfg: PolicyConfig, rows: int = 2000) -> Feed:
    rng = np.random.default_rng(7)
    feed = Feed(cfg)
    feed.release("BTC", "rel-1")
    feed.features(
        "BTC", {"ret": rng.normal(0, 1, rows), "vol": rng.gamma(2.0, 1.0, rows)},
        release_id="rel-1",
    )
    return feed


def test_psi_drift_on_feature_batches() -> None:
    cfg = no_schedule(cooldown_s=0.0, drift=DriftPolicy(min_rows=500, detectors=["psi", "ks"]))
    feed = _ref_feed(cfg)
    rng = np.random.default_rng(11)
    feed.at(1)
    outs = [
        feed.features("BTC", {"ret": rng.normal(0, 1, 100), "vol": rng.gamma(2.0, 1.0, 100)})
        for _ in range(5)
    ]
    assert outs[:4] == [[], [], [], []]
    assert reasons(outs[4]) == ["held.drift"]
    assert outs[4][0].details["rows"] == 500
    assert outs[4][0].details["psi_max"] < 0.2
    outs = [
        feed.features("BTC", {"ret": rng.normal(1.0, 1, 250), "vol": rng.gamma(2.0, 1.0, 250)})
        for _ in range(2)
    ]
    (cmd,) = outs[1]
    assert (cmd.kind, cmd.reason) == ("retrain", "drift.psi")
    assert cmd.details["drifted_psi"] == ["ret"]
    assert cmd.details["psi"]["ret"] > 0.2 > cmd.details["psi"]["vol"]
    assert cmd.details["ks"]["ret"]["pvalue"] < 1e-6


def test_ks_drift_when_psi_is_off() -> None:
    cfg = no_schedule(drift=DriftPolicy(min_rows=400, detectors=["ks"]))
    feed = _ref_feed(cfg)
    rng = np.random.default_rng(3)
    out = feed.at(7).features(
        "BTC", {"ret": rng.normal(0.5, 1, 400), "vol": rng.gamma(2.0, 1.0, 400)}
    )
    assert reasons(out) == ["drift.ks"]
    assert out[0].details["psi"] == {} and out[0].details["drifted_ks"] == ["ret"]


def test_feature_drift_needs_the_champions_reference() -> None:
    cfg = no_schedule(drift=DriftPolicy(min_rows=10))
    feed = Feed(cfg)
    rng = np.random.default_rng(1)
    feed.release("BTC", "rel-1")
    feed.features("BTC", {"ret": rng.normal(0, 1, 100)}, release_id="rel-0")  # an old release
    assert feed.features("BTC", {"ret": rng.normal(3, 1, 50)}) == []
    assert feed.state.symbol("BTC").buffer_rows == 0


def test_adwin_fires_once_on_a_confidence_shift() -> None:
    cfg = no_schedule(cooldown_s=0.0, drift=DriftPolicy(detectors=["adwin"]))
    feed = Feed(cfg)
    feed.release("BTC", "rel-1")
    rng = np.random.default_rng(5)
    out: list[Command] = []
    for x in np.concatenate([rng.normal(0.55, 0.02, 600), rng.normal(0.80, 0.02, 600)]):
        out += feed.signal("BTC", float(x))
    retrains = [c for c in out if c.kind == "retrain"]
    assert [c.reason for c in retrains] == ["drift.adwin"]
    assert retrains[0].details["stream"] == "prediction"
    assert 600 < retrains[0].details["n"] < 700
    assert all(c.reason == "suppressed.pending" for c in out if c.kind != "retrain")


def test_page_hinkley_on_the_outcome_stream() -> None:
    cfg = no_schedule(
        cooldown_s=0.0,
        drift=DriftPolicy(detectors=["page_hinkley"], streams=["outcome"], outcome_value="hit",
                          page_hinkley_threshold=25.0),
    )
    feed = Feed(cfg)
    feed.release("BTC", "rel-1")
    rng = np.random.default_rng(9)
    wins = np.concatenate([rng.random(300) < 0.6, rng.random(300) < 0.1])  # hit rate collapses
    out: list[Command] = []
    for i, win in enumerate(wins):
        r = 0.01 if win else -0.01
        out += feed.send(
            TradeOutcome, symbol="BTC", trade_id=f"t{i}", side="long", qty=1.0,
            entry_price=100.0, exit_price=100.0 * (1 + r), fees=0.0, pnl=r * 100, return_=r,
        )
    retrains = [c for c in out if c.kind == "retrain"]
    assert [c.reason for c in retrains] == ["drift.page_hinkley"]
    assert retrains[0].details["stream"] == "outcome"
    assert retrains[0].details["n"] > 300


def test_reported_drift_from_other_components() -> None:
    feed = Feed(no_schedule())
    fields = dict(symbol="BTC", stream="features", statistic="psi", value=0.4, threshold=0.2,
                  drifted=True)
    assert feed.send(DriftReported, detector="autoopt.core", **fields) == []
    out = feed.send(DriftReported, detector="engine-monitor", feature="ret", **fields)
    assert reasons(out) == ["drift.reported"]
    assert out[0].details["feature"] == "ret"


# ------------------------------------------------------------------------ command records


def test_commands_round_trip_through_decision_events() -> None:
    feed = Feed(no_schedule(degradation=DegradationPolicy(window=1)))
    feed.release("BTC", "rel-1", **CLASSIC)
    out = feed.at(1).metrics("BTC", **RECENT)
    cause = feed.events[-1]
    (cmd,) = out
    rec = decision_event(cmd, cause)
    assert rec.event_id == cmd.id and rec.causation_id == cause.event_id
    wire = msgspec.msgpack.decode(msgspec.msgpack.encode(rec), type=DecisionMade)
    assert encode_commands([command_from_decision(wire)]) == encode_commands([cmd])
