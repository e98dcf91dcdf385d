"""ADWIN and Page-Hinkley against river's detectors; CUSUM and Welford; checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import drift as river_drift

from autoopt.drift import ADWIN, CUSUM, PageHinkley, PSIMonitor, Welford
from autoopt.errors import DataError


def _stream(seed: int, kind: str, n: int = 6000) -> np.ndarray:
    """Seeded streams with known shifts at n/3 and 2n/3."""
    rng = np.random.default_rng(seed)
    third = n // 3
    if kind == "mean":
        return np.concatenate([rng.normal(0, 1, third), rng.normal(1.5, 1, third), rng.normal(-0.5, 1, n - 2 * third)])
    if kind == "variance":
        return np.concatenate([rng.normal(0, 0.5, third), rng.normal(0, 3, third), rng.normal(0, 0.5, n - 2 * third)])
    if kind == "binary":
        return np.concatenate([rng.binomial(1, 0.2, third), rng.binomial(1, 0.6, n - third)]).astype(float)
    if kind == "ramp":
        return rng.normal(0, 1, n) + np.linspace(0, 4, n)
    return rng.normal(0, 1, n)


def _river_hits(detector: object, xs: np.ndarray) -> list[int]:
    hits = []
    for i, x in enumerate(xs.tolist()):
        detector.update(x)  # type: ignore[attr-defined]
        if detector.drift_detected:  # type: ignore[attr-defined]
            hits.append(i)
    return hits


STREAMS = [(s, k) for s, k in enumerate(["mean", "variance", "binary", "ramp", "none", "mean"])]


@pytest.mark.parametrize(("seed", "kind"), STREAMS)
def test_adwin_detects_where_river_does(seed: int, kind: str) -> None:
    xs = _stream(seed, kind)
    want = _river_hits(river_drift.ADWIN(), xs)
    got = ADWIN().update_many(xs)
    assert got.dtype == np.int64
    assert got.tolist() == want
    if kind in ("mean", "binary"):
        assert want, "the shifted stream must trigger"


def _hard_stream(kind: str, seed: int, n: int = 20_000) -> np.ndarray:
    """Streams where rounding matters: offsets that leave the window sums only a few ulps of
    resolution for the shift."""
    rng = np.random.default_rng(seed)
    half = n // 2
    if kind == "offset":
        return 1e9 + np.concatenate([rng.normal(0, 1, half), rng.normal(0.08, 1, n - half)])
    if kind == "huge_offset":
        return 1e12 + np.concatenate([rng.normal(0, 1, half), rng.normal(1.0, 1, n - half)])
    return -3e13 + np.concatenate([rng.normal(0, 4, half), rng.normal(-3.0, 4, n - half)])


@pytest.mark.parametrize("kind", ["offset", "huge_offset", "negative_offset"])
@pytest.mark.parametrize("seed", [0, 1])
def test_adwin_matches_river_where_rounding_matters(kind: str, seed: int) -> None:
    """The scan's screen works from bounds (no division, sums re-used between scans); on
    streams built to stress floating point it still lets through every split river cuts."""
    xs = _hard_stream(kind, seed)
    found = 0
    for params in ({}, {"clock": 1, "delta": 0.05}):
        want = _river_hits(river_drift.ADWIN(**params), xs)
        assert ADWIN(**params).update_many(xs).tolist() == want
        found += len(want)
    assert found > 0, "the shift must be detectable, or the test shows nothing"


@pytest.mark.parametrize(
    "params",
    [
        {"delta": 0.01, "clock": 1},
        {"delta": 0.0001, "clock": 8, "max_buckets": 2, "min_window_length": 10, "grace_period": 50},
        {"clock": 16, "max_buckets": 2},
    ],
)
def test_adwin_params_match_river(params: dict[str, float]) -> None:
    xs = _stream(42, "mean", 4000)
    assert ADWIN(**params).update_many(xs).tolist() == _river_hits(river_drift.ADWIN(**params), xs)


@pytest.mark.parametrize(
    ("params", "chunks"),
    [
        ({}, [1, 31, 32, 33, 1000]),
        ({"clock": 1, "max_buckets": 3}, [7, 64, 65]),
        ({"clock": 100, "max_buckets": 9, "min_window_length": 1, "grace_period": 0}, [5, 129]),
        ({"max_buckets": 40, "delta": 0.01}, [50, 3]),
    ],
)
def test_adwin_state_matches_river_bit_for_bit(params: dict[str, float], chunks: list[int]) -> None:
    """Batched feeding in uneven chunks leaves river's exact window statistics and detections."""
    rng = np.random.default_rng(11)
    xs = np.concatenate([rng.normal(0, 1, 5000), rng.normal(0.4, 1, 5000), rng.normal(0, 3, 4000) + 1e3])
    ours, theirs = ADWIN(**params), river_drift.ADWIN(**params)
    got, want, i, k = [], [], 0, 0
    while i < len(xs):
        part = xs[i : i + chunks[k % len(chunks)]]
        got += (ours.update_many(part) + i).tolist()
        for j, x in enumerate(part.tolist()):
            theirs.update(x)
            if theirs.drift_detected:
                want.append(i + j)
        assert (ours.width, ours.total, ours.variance) == (theirs.width, theirs.total, theirs.variance)
        i += len(part)
        k += 1
    assert got == want and len(want) >= 2


def test_adwin_single_bucket_levels_do_not_crash() -> None:
    """river's ADWIN panics here (max_buckets=1 leaves empty levels); ours keeps detecting."""
    xs = _stream(42, "mean", 4000)
    assert len(ADWIN(clock=16, max_buckets=1).update_many(xs)) >= 1


def test_adwin_scalar_updates_and_state() -> None:
    xs = _stream(3, "mean", 3000)
    ours, theirs = ADWIN(), river_drift.ADWIN()
    for x in xs.tolist():
        theirs.update(x)
        assert ours.update(x) == theirs.drift_detected
        assert ours.width == theirs.width
        assert ours.estimation == pytest.approx(theirs.estimation, rel=1e-12, abs=1e-12)
    assert ours.n_detections >= 1


@pytest.mark.parametrize("mode", ["both", "up", "down"])
@pytest.mark.parametrize(("seed", "kind"), STREAMS[:4])
def test_page_hinkley_detects_where_river_does(mode: str, seed: int, kind: str) -> None:
    xs = _stream(seed, kind)
    want = _river_hits(river_drift.PageHinkley(mode=mode), xs)
    assert PageHinkley(mode=mode).update_many(xs).tolist() == want


def test_page_hinkley_params_match_river() -> None:
    xs = _stream(9, "mean") * 5
    kw = {"min_instances": 10, "delta": 0.1, "threshold": 20.0, "alpha": 0.99}
    assert PageHinkley(**kw).update_many(xs).tolist() == _river_hits(river_drift.PageHinkley(**kw), xs)


def test_cusum_detects_shift_at_known_point() -> None:
    xs = np.concatenate([np.zeros(100), np.full(50, 2.0)])
    c = CUSUM(k=0.5, h=5.0, min_instances=30)
    # S+ grows by 1.5 per shifted value: 1.5, 3.0, 4.5, 6.0 > 5 at the 4th one (index 103)
    assert c.update_many(xs).tolist()[0] == 103
    fixed = CUSUM(k=0.0, h=1.0, target=0.0, min_instances=0)
    assert fixed.update_many([0.5, 0.4, 0.3]).tolist() == [2]
    assert fixed.target == 0.0


def test_welford_matches_numpy() -> None:
    xs = np.random.default_rng(0).normal(5, 3, 10_000)
    w = Welford()
    w.update_many(xs)
    assert w.count == 10_000
    assert w.mean == pytest.approx(xs.mean(), rel=1e-12)
    assert w.variance() == pytest.approx(xs.var(ddof=1), rel=1e-10)
    assert w.std(ddof=0) == pytest.approx(xs.std(), rel=1e-10)
    assert (w.min, w.max) == (xs.min(), xs.max())
    assert np.isnan(Welford().mean)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, max_size=60), st.lists(finite, max_size=60))
def test_welford_merge_equals_single_pass(a: list[float], b: list[float]) -> None:
    wa, wb, wall = Welford(), Welford(), Welford()
    wa.update_many(a)
    wb.update_many(b)
    wall.update_many(a + b)
    m = wa.merge(wb)
    assert m.count == wall.count
    if wall.count:
        scale = max(1.0, max(abs(v) for v in a + b))
        assert m.mean == pytest.approx(wall.mean, rel=1e-9, abs=1e-9 * scale)
        assert m.m2 == pytest.approx(wall.m2, rel=1e-7, abs=1e-9 * scale * scale)
        assert (m.min, m.max) == (wall.min, wall.max)


def _make(kind: str) -> ADWIN | PageHinkley | CUSUM | Welford:
    return {"adwin": ADWIN(clock=4), "ph": PageHinkley(min_instances=5, threshold=5.0),
            "cusum": CUSUM(h=2.0, min_instances=5), "welford": Welford()}[kind]


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(["adwin", "ph", "cusum", "welford"]),
    st.lists(st.floats(min_value=-50, max_value=50, allow_nan=False), min_size=1, max_size=300),
    st.integers(min_value=0, max_value=300),
)
def test_state_round_trip_continues_identically(kind: str, xs: list[float], cut: int) -> None:
    cut = min(cut, len(xs))
    a = _make(kind)
    a.update_many(xs[:cut])
    b = type(a).from_bytes(a.to_bytes())
    assert b.to_bytes() == a.to_bytes()
    ra, rb = a.update_many(xs[cut:]), b.update_many(xs[cut:])
    if ra is not None:
        assert ra.tolist() == rb.tolist()
    assert a.to_bytes() == b.to_bytes()


def test_checkpoint_restores_mid_stream_adwin() -> None:
    xs = _stream(1, "mean")
    whole = ADWIN().update_many(xs).tolist()
    first = ADWIN()
    head = first.update_many(xs[:2500]).tolist()
    resumed = ADWIN.from_bytes(first.to_bytes())
    tail = (resumed.update_many(xs[2500:]) + 2500).tolist()
    assert head + tail == whole


@pytest.mark.parametrize("cls", [ADWIN, PageHinkley, CUSUM, Welford, PSIMonitor])
def test_corrupt_or_foreign_checkpoints_raise(cls: type) -> None:
    good = ADWIN().to_bytes() if cls is not ADWIN else PageHinkley().to_bytes()
    with pytest.raises(DataError, match="hold a .* state, not"):
        cls.from_bytes(good)
    own = (cls([1.0, 2.0, 3.0]) if cls is PSIMonitor else cls()).to_bytes()
    flipped = bytearray(own)
    flipped[7] ^= 0xFF
    with pytest.raises(DataError, match="checksum"):
        cls.from_bytes(bytes(flipped))
    with pytest.raises(DataError):
        cls.from_bytes(own[:-6])
    with pytest.raises(DataError, match="magic"):
        cls.from_bytes(b"XXXX" + own[4:])


def test_detectors_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="delta"):
        ADWIN(delta=2.0)
    with pytest.raises(ValueError, match="max_buckets"):
        ADWIN(max_buckets=0)
    with pytest.raises(ValueError, match="clock"):
        ADWIN(clock=0)
    with pytest.raises(ValueError, match="mode"):
        PageHinkley(mode="sideways")
    with pytest.raises(ValueError, match="threshold"):
        PageHinkley(threshold=-1)
    with pytest.raises(ValueError, match="h must"):
        CUSUM(h=0.0)
    with pytest.raises(DataError, match="NaN"):
        ADWIN().update(float("nan"))
    with pytest.raises(DataError, match="NaN"):
        PageHinkley().update_many([1.0, float("nan")])
    with pytest.raises(TypeError, match="real number"):
        ADWIN().update("x")  # type: ignore[arg-type]
