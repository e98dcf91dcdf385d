"""KS and PSI against their references (scipy, numpy) in the same run."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from autoopt.drift import KSResult, PSIMonitor, ks_2samp, ks_pvalue, psi
from autoopt.errors import DataError


def _close(got: float, want: float, rtol: float) -> bool:
    if want == 0.0 or got == 0.0:
        return abs(got - want) <= 1e-300
    return abs(got - want) <= rtol * abs(want)


# (n1, n2, shift, discrete): small n (Durbin matrix / Pomeranz / Smirnov), large n (Pelz-Good,
# Durbin), strong shifts (Smirnov sums), ties, and extreme statistics.
KS_CASES = [
    (40, 60, 0.0, False),
    (50, 70, 0.6, False),
    (100, 130, 0.5, False),
    (120, 150, 1.2, False),
    (300, 300, 0.0, False),
    (1000, 1200, 0.2, False),
    (2000, 1500, 0.05, True),
    (20_000, 30_000, 0.0, False),
    (20_000, 30_000, 0.04, False),
    (200_000, 150_000, 0.01, False),
    (10, 12, 5.0, False),
    (7, 3, 0.0, True),
]


@pytest.mark.parametrize(("n1", "n2", "shift", "discrete"), KS_CASES)
def test_ks_matches_scipy_asymp(n1: int, n2: int, shift: float, discrete: bool) -> None:
    rng = np.random.default_rng(n1 * 7 + n2)
    a = rng.normal(size=n1)
    b = rng.normal(size=n2) + shift
    if discrete:
        a, b = np.round(a * 3), np.round(b * 3)
    got = ks_2samp(a, b)
    want = stats.ks_2samp(a, b, method="asymp")
    assert isinstance(got, KSResult)
    assert got.statistic == want.statistic
    assert _close(got.pvalue, float(want.pvalue), 1e-9), (got.pvalue, want.pvalue)
    assert got.statistic_location == want.statistic_location
    assert got.statistic_sign == want.statistic_sign


@pytest.mark.parametrize("en", [1, 2, 5, 30, 140, 141, 1000, 99_999, 150_000, 2_000_000])
def test_ks_pvalue_matches_kstwo_on_every_branch(en: int) -> None:
    """Ruben-Gambino, Durbin matrix, Pomeranz, Pelz-Good and Smirnov regimes of kstwo.sf."""
    # scipy's Smirnov sum costs O(n) per call, so large n get fewer statistics
    scaled = [0.4, 1.0, 2.0, 4.5, 30.0] if en > 50_000 else [0.4, 0.5, 0.75, 1.0, 1.3, 2.0, 3.0, 4.5, 8.0]
    edges = [0.3 / en, 0.7 / en, 1.0 / en, 0.49, 0.5, 0.6, 0.99, 1.0] if en <= 50_000 else [0.5]
    ds = np.unique(np.concatenate([np.array(scaled) / np.sqrt(en), edges]))
    for d in ds[(ds > 0) & (ds <= 1)]:
        # any (n1, n2) with round(n1*n2/(n1+n2)) == en: n1 = n2 = 2*en
        got = ks_pvalue(float(d), 2 * en, 2 * en)
        want = float(np.clip(stats.kstwo.sf(d, en), 0, 1))
        assert _close(got, want, 1e-9), (en, d, got, want)


def test_ks_accepts_ints_lists_and_polars() -> None:
    import polars as pl

    a = [1, 2, 3, 4, 5, 6, 7, 8]
    b = np.array([3, 4, 5, 6, 7, 8, 9, 10], dtype=np.int32)
    want = stats.ks_2samp(a, b, method="asymp")
    for x, y in [(a, b), (pl.Series(a), pl.Series(b.astype(float))), (tuple(a), list(b))]:
        got = ks_2samp(x, y)
        assert got.statistic == want.statistic
        assert _close(got.pvalue, float(want.pvalue), 1e-12)


def test_ks_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="non-empty"):
        ks_2samp([], [1.0])
    with pytest.raises(DataError, match="reference contains NaN"):
        ks_2samp([1.0, np.nan], [1.0])
    with pytest.raises(TypeError, match="numeric"):
        ks_2samp(["a", "b"], [1.0])
    with pytest.raises(ValueError, match="1-D"):
        ks_2samp(np.ones((2, 2)), [1.0])


def _numpy_psi(reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    edges = np.quantile(reference, np.linspace(0, 1, bins + 1))
    edges[0], edges[-1] = -np.inf, np.inf
    p = np.histogram(reference, edges)[0] / len(reference)
    q = np.histogram(current, edges)[0] / len(current)
    p, q = np.clip(p, 1e-4, None), np.clip(q, 1e-4, None)
    return float(np.sum((q - p) * np.log(q / p)))


@pytest.mark.parametrize("bins", [2, 5, 10, 20])
@pytest.mark.parametrize("kind", ["normal", "shifted", "discrete", "heavy"])
def test_psi_matches_numpy(bins: int, kind: str) -> None:
    rng = np.random.default_rng(bins)
    ref = rng.normal(size=5000)
    cur = rng.normal(size=3000)
    if kind == "shifted":
        cur = cur * 1.5 + 0.7
    elif kind == "discrete":
        ref, cur = np.round(ref * 2), np.round(cur * 2 + 1)
    elif kind == "heavy":
        ref, cur = rng.standard_cauchy(5000), rng.standard_cauchy(3000) * 3
    want = _numpy_psi(ref, cur, bins)
    got = psi(ref, cur, bins)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_psi_monitor_streams_like_one_shot() -> None:
    rng = np.random.default_rng(11)
    ref, cur = rng.normal(size=4000), rng.normal(0.3, 1.2, size=6000)
    mon = PSIMonitor(ref, bins=10)
    assert np.isnan(mon.value())
    for chunk in np.array_split(cur, 7):
        mon.update(chunk)
    assert mon.value() == pytest.approx(psi(ref, cur, 10), rel=1e-12)
    assert mon.n_current == 6000 and mon.n_reference == 4000
    np.testing.assert_allclose(mon.edges, np.quantile(ref, np.linspace(0, 1, 11))[1:-1], rtol=0, atol=0)
    restored = PSIMonitor.from_bytes(mon.to_bytes())
    assert restored.value() == mon.value()
    mon.reset()
    assert mon.n_current == 0 and np.isnan(mon.value())


def test_psi_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="reference"):
        psi([], [1.0])
    with pytest.raises(DataError, match="NaN"):
        psi([1.0, np.nan, 2.0], [1.0])
    with pytest.raises(DataError, match="NaN"):
        PSIMonitor([1.0, 2.0]).update([np.nan])
    with pytest.raises(ValueError, match="bins"):
        psi([1.0, 2.0], [1.0], bins=1)
    with pytest.raises(DataError, match="checkpoint|short|magic"):
        PSIMonitor.from_bytes(b"not a checkpoint")
