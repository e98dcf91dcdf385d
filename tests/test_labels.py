"""Labels: hand-checked values, explicit nulls at the edges, and t1 that bounds what a label saw."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoopt.errors import DataError
from autoopt.labels import (
    drop_unlabeled,
    fixed_horizon_labels,
    rolling_volatility,
    triple_barrier_labels,
)


@pytest.fixture
def walk() -> np.ndarray:
    rng = np.random.default_rng(7)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, 300)))


def test_fixed_horizon_hand_values() -> None:
    close = [100.0, 101.0, 102.0, 101.0, 100.0, 100.05, 100.0]
    f = fixed_horizon_labels(close, horizon=2, dead_zone=0.001)
    # returns over 2 bars: +2%, 0, -2%, ~-1%, 0 ; |ret| <= 0.1% → 0 ; last 2 rows null
    assert f["label"].to_list() == [1, 0, -1, -1, 0, None, None]
    assert f["t1"].to_list() == [2, 3, 4, 5, 6, None, None]
    assert f["ret"][0] == pytest.approx(math.log(102 / 100))


def test_last_horizon_rows_are_null_and_dropped(walk: np.ndarray) -> None:
    f = fixed_horizon_labels(walk, horizon=5)
    assert f["label"].null_count() == 5 and f["label"][-6] is not None
    kept = drop_unlabeled(f)
    assert kept.height == walk.size - 5 and kept["label"].null_count() == 0


def _brute_triple_barrier(close, h, pt, sl, w):
    vol = rolling_volatility(close, w)
    out = []
    for t in range(close.size):
        if not np.isfinite(vol[t]) or t >= close.size - h:
            out.append((None, None))
            continue
        width = vol[t] * math.sqrt(h)
        lab, t1 = 0, t + h
        for j in range(t + 1, t + h + 1):
            r = math.log(close[j] / close[t])
            if r >= pt * width:
                lab, t1 = 1, j
                break
            if r <= -sl * width:
                lab, t1 = -1, j
                break
        out.append((lab, t1))
    return out


def test_triple_barrier_matches_brute_force(walk: np.ndarray) -> None:
    f = triple_barrier_labels(walk, horizon=10, pt_mult=1.0, sl_mult=0.5, vol_window=20)
    expected = _brute_triple_barrier(walk, 10, 1.0, 0.5, 20)
    assert list(zip(f["label"].to_list(), f["t1"].to_list(), strict=True)) == expected
    labels = set(f["label"].drop_nulls().to_list())
    assert labels == {-1, 0, 1}
    # first vol_window rows (volatility warm-up) and last horizon rows carry no label
    assert f["label"][:20].null_count() == 20 and f["label"][-10:].null_count() == 10
    assert f["label"][20] is not None


def test_triple_barrier_hand_example() -> None:
    # 22 bars alternating 100 / 100.1: per-bar vol ≈ 1.03e-3, so with h=3 and mult=2 the
    # barriers sit at ±2 × 1.03e-3 × √3 ≈ ±0.36%. Then a +3% jump at bar 23 and -8% at bar 25.
    base = [100.0, 100.1] * 11
    close = np.array([*base, 100.0, 103.0, 103.0, 95.0, 95.0, 95.0])
    f = triple_barrier_labels(close, horizon=3, pt_mult=2.0, sl_mult=2.0, vol_window=20)
    # vol needs 20 one-bar returns, i.e. 21 closes: bar 19 has none, bar 20 is the first labelled
    assert f["label"][19] is None and f["label"][20] is not None
    # bar 21 (100.1): -0.1% at bar 22 stays inside, +2.9% at bar 23 touches the upper barrier
    assert (f["label"][21], f["t1"][21]) == (1, 23)
    assert (f["label"][22], f["t1"][22]) == (1, 23)
    # bar 23 (103): vol now includes the jump (≈0.66% → barriers ±2.3%); 95 at bar 25 is -8.1%
    assert (f["label"][23], f["t1"][23]) == (-1, 25)
    assert f["ret"][23] == pytest.approx(math.log(95 / 103))


def test_triple_barrier_vertical_barrier_labels_zero() -> None:
    base = [100.0, 100.1] * 11
    close = np.array([*base, 100.05, 100.05, 100.05, 100.05])
    f = triple_barrier_labels(close, horizon=3, pt_mult=50.0, sl_mult=50.0, vol_window=20)
    assert f["label"][21] == 0 and f["t1"][21] == 24


def test_label_depends_only_on_bars_up_to_t1(walk: np.ndarray) -> None:
    """Leakage guard: changing any close after t1[t] must not change row t's label."""
    f = triple_barrier_labels(walk, horizon=15, vol_window=20)
    g = fixed_horizon_labels(walk, horizon=15)
    for frame, fn in ((f, lambda c: triple_barrier_labels(c, 15, vol_window=20)),
                      (g, lambda c: fixed_horizon_labels(c, 15))):
        for t in (30, 100, 200):
            t1 = frame["t1"][t]
            bumped = walk.copy()
            bumped[t1 + 1 :] *= 1.5
            assert fn(bumped)["label"][t] == frame["label"][t]
            assert fn(bumped)["t1"][t] == t1


def test_drop_unlabeled_rebases_t1(walk: np.ndarray) -> None:
    f = triple_barrier_labels(walk, horizon=10, vol_window=20)
    kept = drop_unlabeled(f)
    assert kept.height == walk.size - 30
    # positions shift by the 20 dropped warm-up rows
    assert kept["t1"].to_list()[:50] == [t - 20 for t in f["t1"].to_list()[20:70]]
    assert (kept["t1"].to_numpy() >= np.arange(kept.height)).all()
    assert kept["t1"].max() <= kept.height  # pointing into dropped tail → one past the end


def test_bad_closes_rejected() -> None:
    with pytest.raises(DataError, match="finite and > 0"):
        fixed_horizon_labels([1.0, math.nan, 2.0], 1)
    with pytest.raises(DataError, match="horizon"):
        triple_barrier_labels([1.0, 2.0], 0)
