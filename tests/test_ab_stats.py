"""autoopt.ab.stats against scipy on seeded data, plus calibration checks of the Sharpe tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from autoopt.ab import stats
from autoopt.errors import DataError


def _returns(seed: int, n: int, mu: float, sd: float, df: float = 4.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return mu + sd * rng.standard_t(df, size=n) / math.sqrt(df / (df - 2))


@pytest.mark.parametrize(("na", "nb", "shift"), [(50, 80, 0.0), (400, 300, 0.002), (7, 9, 0.01)])
def test_welch_matches_scipy(na: int, nb: int, shift: float) -> None:
    a = _returns(1, na, 0.0005, 0.01)
    b = _returns(2, nb, 0.0005 + shift, 0.02)
    got = stats.welch_t_test(a, b)
    ref = sps.ttest_ind(b, a, equal_var=False)
    assert got.t == pytest.approx(ref.statistic, rel=1e-12)
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert got.df == pytest.approx(ref.df, rel=1e-12)
    ci = ref.confidence_interval(0.95)
    assert (got.ci_low, got.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)


def test_welch_from_moments_equals_raw() -> None:
    a, b = _returns(3, 120, 0.0, 0.01), _returns(4, 90, 0.001, 0.015)
    raw = stats.welch_t_test(a, b)
    mom = stats.welch_from_moments(a.mean(), a.var(ddof=1), a.size, b.mean(), b.var(ddof=1), b.size)
    assert mom.p_value == pytest.approx(raw.p_value, rel=1e-12)


@pytest.mark.parametrize(("na", "nb"), [(60, 45), (500, 700)])
def test_mann_whitney_matches_scipy(na: int, nb: int) -> None:
    a = _returns(5, na, 0.0, 0.01)
    b = _returns(6, nb, 0.002, 0.01)
    got = stats.mann_whitney_u(a, b)
    ref = sps.mannwhitneyu(b, a, alternative="two-sided", method="asymptotic")
    assert got.u == pytest.approx(ref.statistic, rel=1e-12)
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert got.prob_superiority == pytest.approx(ref.statistic / (na * nb))


def test_mann_whitney_with_ties_matches_scipy() -> None:
    rng = np.random.default_rng(7)
    a = np.round(rng.normal(0, 1, 200), 1)  # rounded: many ties
    b = np.round(rng.normal(0.2, 1, 150), 1)
    got = stats.mann_whitney_u(a, b)
    ref = sps.mannwhitneyu(b, a, alternative="two-sided", method="asymptotic")
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert got.z > 0  # b is shifted up


def test_bootstrap_sharpe_ci_is_seeded_and_covers() -> None:
    a, b = _returns(8, 300, 0.0005, 0.01), _returns(9, 250, 0.003, 0.01)
    r1 = stats.bootstrap_sharpe_diff(a, b, n_boot=2000, seed=42, max_cells=50_000)
    r2 = stats.bootstrap_sharpe_diff(a, b, n_boot=2000, seed=42)  # other chunking, same draws
    assert (r1.ci_low, r1.ci_high) == (r2.ci_low, r2.ci_high)
    assert r1.ci_low < r1.diff < r1.ci_high
    assert r1.diff == pytest.approx(stats.sharpe_ratio(b) - stats.sharpe_ratio(a))
    # the standard error of a Sharpe estimate is about sqrt((1 + SR²/2)/n): check the width
    se = math.sqrt(1 / 300 + 1 / 250)
    assert r1.ci_high - r1.ci_low == pytest.approx(2 * 1.96 * se, rel=0.25)
    r3 = stats.bootstrap_sharpe_diff(a, b, n_boot=2000, seed=43)
    assert r3.ci_low != r1.ci_low


def test_jobson_korkie_hand_checked() -> None:
    # SR_a = 0.1, SR_b = 0.2, rho = 0.5, T = 100:
    # theta = [2 - 1 + 0.5 * (0.01 + 0.04 - 2 * 0.02 * 0.25)] / 100 = 1.02 / 100
    # z = 0.1 / sqrt(0.0102) = 0.990147542976674, p = 2 * (1 - Phi(z)) = 0.322100...
    r = stats.jobson_korkie_from_moments(0.1, 0.2, 0.5, 100)
    assert r.se**2 == pytest.approx(0.0102, rel=1e-12)
    assert r.z == pytest.approx(0.990147542976674, rel=1e-12)
    assert r.p_value == pytest.approx(2 * sps.norm.sf(0.990147542976674), rel=1e-12)


def test_jobson_korkie_series_uses_sample_moments() -> None:
    rng = np.random.default_rng(11)
    common = rng.normal(0, 1, 250)
    a = 0.05 + 0.8 * common + 0.6 * rng.normal(0, 1, 250)
    b = 0.15 + 0.8 * common + 0.6 * rng.normal(0, 1, 250)
    r = stats.jobson_korkie_memmel(a, b)
    assert r.rho == pytest.approx(np.corrcoef(a, b)[0, 1])
    assert r.sharpe_a == pytest.approx(a.mean() / a.std(ddof=1))
    assert r.z > 0 and r.n == 250


def test_jobson_korkie_memmel_is_calibrated() -> None:
    """Under equal Sharpe ratios the Memmel variance matches the Monte Carlo variance of the
    Sharpe difference and the test rejects about alpha of the time; it has power otherwise."""
    rng = np.random.default_rng(12)
    sims, t, rho = 4000, 400, 0.6
    z1 = rng.standard_normal((sims, t))
    z2 = rho * z1 + math.sqrt(1 - rho**2) * rng.standard_normal((sims, t))

    def sharpe_z(mu_a: float, mu_b: float) -> tuple[np.ndarray, np.ndarray]:
        a, b = mu_a + z1, mu_b + 2.0 * z2  # b more volatile, same Sharpe when mu_b = 2 mu_a
        sa, sb = a.mean(1) / a.std(1, ddof=1), b.mean(1) / b.std(1, ddof=1)
        ac, bc = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
        r = (ac * bc).sum(1) / np.sqrt((ac**2).sum(1) * (bc**2).sum(1))
        var = stats.jk_memmel_variance(sa, sb, r, t)
        return sb - sa, (sb - sa) / np.sqrt(var)

    diff, z = sharpe_z(0.1, 0.2)
    expected_var = stats.jk_memmel_variance(0.1, 0.1, rho, t)
    assert diff.var() == pytest.approx(expected_var, rel=0.1)
    assert 0.03 < np.mean(np.abs(z) > 1.96) < 0.07
    _, z_alt = sharpe_z(0.05, 0.5)
    assert np.mean(np.abs(z_alt) > 1.96) > 0.9


def test_srm_matches_scipy_and_flags_mismatch() -> None:
    weights = {"control": 0.5, "b": 0.3, "c": 0.2}
    ok = stats.sample_ratio_mismatch({"control": 5030, "b": 2980, "c": 1990}, weights)
    ref = sps.chisquare([5030, 2980, 1990], [5000, 3000, 2000])
    assert ok.chi2 == pytest.approx(ref.statistic, rel=1e-12)
    assert ok.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert not ok.mismatch
    bad = stats.sample_ratio_mismatch({"control": 5300, "b": 2800, "c": 1900}, weights)
    assert bad.mismatch and bad.p_value < 1e-3
    assert bad.expected["b"] == pytest.approx(3000.0)


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(DataError, match=r"b\[1\] is nan"):
        stats.welch_t_test([1.0, 2.0, 3.0], [1.0, float("nan")])
    with pytest.raises(DataError, match="both samples are constant"):
        stats.welch_t_test([1.0, 1.0], [1.0, 1.0])
    with pytest.raises(DataError, match="paired series of equal length"):
        stats.jobson_korkie_memmel([1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(DataError, match="without a weight"):
        stats.sample_ratio_mismatch({"x": 3}, {"a": 0.5, "b": 0.5})
