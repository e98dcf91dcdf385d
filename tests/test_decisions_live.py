"""The live baseline and the degradation trigger's hysteresis, through the pure decision core
(`decide`), with releases and reports built as producers build them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from autoopt.clock import NS_PER_S
from autoopt.config import DegradationPolicy, PolicyConfig
from autoopt.core import Command, State, decide
from autoopt.errors import ConfigError
from autoopt.events import Event, MetricsReported, ModelPromoted, ModelReleased
from autoopt.validation.live import expected_live, live_test

T0 = 1_704_067_200 * NS_PER_S


class Feed:
    def __init__(self, config: PolicyConfig) -> None:
        self.config, self.state, self.n = config, State(), 0

    def send(self, cls: type[Event], **fields: Any) -> list[Command]:
        self.n += 1
        now = T0 + self.n * NS_PER_S
        ev = cls.new(event_id=f"ev-{self.n:06d}", ts_event=now, ts_init=now, **fields)
        self.state, out = decide(self.state, ev, now, self.config)
        return out

    def report(self, mean_return: float, n_trades: int) -> list[Command]:
        return self.send(MetricsReported, symbol="BTC", window="rolling",
                         metrics={"mean_return": mean_return, "n_trades": float(n_trades),
                                  "sharpe": 1.0})


def test_expected_live_is_on_the_per_trade_scale() -> None:
    r = np.array([0.01, -0.01, 0.02, 0.0] * 25)  # 100 bars, mean 0.005
    e = expected_live(r, n_trades=20)  # 5 bars per trade
    assert e["live/holding"] == 5.0
    assert e["live/trade_mean"] == pytest.approx(0.025)
    assert e["live/trade_std"] == pytest.approx(r.std(ddof=1) * math.sqrt(5))


def test_live_test_enters_and_exits_with_hysteresis() -> None:
    kw = {"z_enter": 3.0, "z_exit": 1.0, "min_trades": 25}
    # expected 0.01 +- 0.02 per trade; 100 trades: standard error 0.002
    assert not live_test(0.01, 0.02, 0.005, 100, degraded=False, **kw).degraded  # z = -2.5
    t = live_test(0.01, 0.02, 0.003, 100, degraded=False, **kw)  # z = -3.5
    assert t.entered and t.degraded and t.statistic == pytest.approx(-3.5)
    # in between the thresholds it stays where it is, either way
    assert live_test(0.01, 0.02, 0.006, 100, degraded=True, **kw).degraded  # z = -2
    assert not live_test(0.01, 0.02, 0.006, 100, degraded=False, **kw).degraded
    back = live_test(0.01, 0.02, 0.0085, 100, degraded=True, **kw)  # z = -0.75
    assert back.exited and not back.degraded
    small = live_test(0.01, 0.02, -1.0, 10, degraded=False, **kw)
    assert not small.degraded and math.isnan(small.statistic) and "minimum 25" in small.reason
    with pytest.raises(ConfigError, match="z_exit < z_enter"):
        live_test(0.01, 0.02, 0.0, 100, degraded=False, z_enter=1.0, z_exit=2.0, min_trades=1)


def test_degradation_fires_once_per_episode_and_records_its_statistic() -> None:
    feed = Feed(PolicyConfig(schedule=None, cooldown_s=0.0, degradation=DegradationPolicy(
        live_z_enter=3.0, live_z_exit=1.0, live_min_trades=25)))
    feed.send(ModelReleased, symbol="BTC", release_id="rel-1", model_type="lgbm",
              sha256="0" * 64, uri="file:///m/BTC/rel-1",
              metrics={"live/trade_mean": 0.01, "live/trade_std": 0.02, "sharpe": 2.0})
    feed.send(ModelPromoted, symbol="BTC", release_id="rel-1")
    seq = [(0.010, 100), (0.003, 10), (0.003, 100), (0.002, 100), (0.006, 100), (0.009, 100),
           (0.002, 100)]
    kinds = []
    for m, n in seq:
        (cmd,) = feed.report(m, n)
        kinds.append((cmd.kind, cmd.details["state"], cmd.details["statistic"]))
        assert cmd.details["z_enter"] == -3.0 and cmd.details["z_exit"] == -1.0
    assert [k[:2] for k in kinds] == [
        ("held", "normal"),  # on expectation
        ("held", "normal"),  # too few trades to test
        ("retrain", "degraded"),  # z = -3.5: enters, asks once
        ("held", "degraded"),  # still bad: no second request
        ("held", "degraded"),  # z = -2: between the thresholds, stays
        ("held", "normal"),  # z = -0.5: recovered
        ("suppressed", "degraded"),  # a new episode asks again (the guards hold it: the
    ]  # first retrain is still pending)
    assert kinds[2][2] == pytest.approx(-3.5) and kinds[1][2] is None


def test_cbpe_estimate_and_its_uncertainty() -> None:
    from autoopt.validation.cbpe import cbpe

    est = cbpe([0.8, 0.2, 0.6, 0.5])  # hit probabilities 0.8, 0.8, 0.6, 0.5
    assert est.estimate == pytest.approx(0.675) and est.n == 4
    assert est.se == pytest.approx(math.sqrt(0.16 + 0.16 + 0.24 + 0.25) / 4)


def test_cbpe_triggers_before_outcomes_when_confidence_collapses() -> None:
    from autoopt.events import SignalEmitted

    feed = Feed(PolicyConfig(schedule=None, cooldown_s=0.0, degradation=DegradationPolicy(
        cbpe=True, cbpe_window=100, cbpe_z=3.0)))
    feed.send(ModelReleased, symbol="BTC", release_id="rel-1", model_type="lgbm",
              sha256="0" * 64, uri="file:///m/BTC/rel-1", metrics={"accuracy": 0.60})
    feed.send(ModelPromoted, symbol="BTC", release_id="rel-1")
    rng = np.random.default_rng(3)

    def window(p_hit: float) -> list[Command]:
        out: list[Command] = []
        for _ in range(100):
            c = float(np.clip(rng.normal(p_hit, 0.02), 0.5, 1.0))
            out += feed.send(SignalEmitted, symbol="BTC", signal_id=f"s{feed.n}", side="long",
                             confidence=c, release_id="rel-1")
        return out

    (held,) = window(0.60)  # as confident as it was validated: held, with the estimate
    assert held.reason == "held.cbpe"
    assert held.details["estimate"] == pytest.approx(0.60, abs=0.01)
    assert 0.04 < held.details["se"] < 0.06 and held.details["n"] == 100
    (fired,) = window(0.51)  # near coin-flip: z about -1.8, above -3: held
    assert fired.reason == "held.cbpe" and fired.details["statistic"] < -1.5
    feed.config = PolicyConfig(schedule=None, cooldown_s=0.0, degradation=DegradationPolicy(
        cbpe=True, cbpe_window=100, cbpe_z=1.5))
    (fired,) = window(0.51)
    assert (fired.kind, fired.reason) == ("retrain", "performance.cbpe")
    assert fired.details["z_threshold"] == -1.5 and fired.details["expected"] == 0.60
