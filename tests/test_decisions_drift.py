"""Drift thresholds that respect autocorrelation: a stationary AR(1) feature (φ = 0.9) does not
fire where the i.i.d. thresholds do, and a half-sigma shift still does. Through the pure core."""

from __future__ import annotations

from typing import Any

import numpy as np

from autoopt.clock import NS_PER_S
from autoopt.config import DriftPolicy, PolicyConfig
from autoopt.core import Command, State, decide
from autoopt.drift_calibration import block_length, calibrate
from autoopt.events import Event, FeatureBatch, ModelPromoted, ModelReleased

T0 = 1_704_067_200 * NS_PER_S


def ar1(seed: int, n: int, phi: float = 0.9) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.normal(size=n + 500)
    x = np.empty_like(e)
    x[0] = e[0]
    for t in range(1, e.size):
        x[t] = phi * x[t - 1] + e[t]
    return x[500:]


class Feed:
    def __init__(self, config: PolicyConfig) -> None:
        self.config, self.state, self.n = config, State(), 0

    def send(self, ev_cls: type[Event], **fields: Any) -> list[Command]:
        self.n += 1
        now = T0 + self.n * 10**6 * NS_PER_S
        if ev_cls is FeatureBatch:
            cols = fields.pop("columns")
            rows = len(next(iter(cols.values())))
            ev = FeatureBatch.from_arrays(
                symbol="BTC", feature_set="default", ts=now - np.arange(rows, 0, -1),
                columns=cols, event_id=f"ev-{self.n:06d}", ts_event=now, ts_init=now, **fields)
        else:
            ev = ev_cls.new(event_id=f"ev-{self.n:06d}", ts_event=now, ts_init=now, **fields)
        self.state, out = decide(self.state, ev, now, self.config)
        return out


def _run(calibration: str, seed: int, shift: float) -> str:
    cfg = PolicyConfig(schedule=None, cooldown_s=0.0, drift=DriftPolicy(
        min_rows=2000, reference_max_rows=5000, detectors=["psi", "ks"],
        calibration=calibration, bootstrap_samples=100))  # type: ignore[arg-type]
    x = ar1(seed, 7000)
    sd = x[:5000].std()
    feed = Feed(cfg)
    feed.send(ModelReleased, symbol="BTC", release_id="rel-1", model_type="lgbm",
              sha256="0" * 64, uri="file:///m/BTC/rel-1")
    feed.send(ModelPromoted, symbol="BTC", release_id="rel-1")
    feed.send(FeatureBatch, columns={"z": x[:5000]}, release_id="rel-1")
    (cmd,) = feed.send(FeatureBatch, columns={"z": x[5000:] + shift * sd})
    return cmd.reason


def test_block_length_follows_the_dependence() -> None:
    assert block_length(np.random.default_rng(0).normal(size=5000), 1000) <= 2
    assert 20 <= block_length(ar1(0, 5000), 1000) <= 45  # 0.9^k < 0.05 at k = 29


def test_calibrated_thresholds_are_wider_for_autocorrelated_features() -> None:
    iid = calibrate(np.random.default_rng(1).normal(size=5000), 2000, alpha=0.025, samples=100)
    dep = calibrate(ar1(1, 5000), 2000, alpha=0.025, samples=100)
    assert dep[0] > 3 * iid[0] and dep[1] > 2 * iid[1]
    # deterministic given the seed key
    assert calibrate(ar1(1, 5000), 2000, alpha=0.025, samples=100, seed_key="r") == calibrate(
        ar1(1, 5000), 2000, alpha=0.025, samples=100, seed_key="r")


def test_stationary_ar1_does_not_fire_where_iid_thresholds_do_and_a_shift_does() -> None:
    seeds = range(6)
    fixed = [_run("none", s, 0.0) for s in seeds]
    calibrated = [_run("block_bootstrap", s, 0.0) for s in seeds]
    shifted = [_run("block_bootstrap", s, 0.5) for s in seeds]
    assert sum(r != "held.drift" for r in fixed) >= 4  # i.i.d. KS fires on stationary data
    assert calibrated.count("held.drift") >= 5
    assert sum(r.startswith("drift.") for r in shifted) >= 5
