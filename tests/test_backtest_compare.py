"""Policy comparison on hand-built backtest results from seeded synthetic returns: a real edge is
found, noise is not, Holm's correction bites, the run is deterministic, and the paired block
bootstrap it rests on (`autoopt.ab.stats`) keeps the pairing and the serial dependence."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest

from autoopt.ab.stats import bootstrap_sharpe_diff
from autoopt.backtest.compare import compare_policies, default_block, holm
from autoopt.backtest.result import PolicyResult, SymbolPath
from autoopt.errors import DataError


def _policy(name: str, returns: np.ndarray, ts: list[int] | None = None) -> PolicyResult:
    n = returns.size
    ts = ts if ts is not None else list(range(1_000, 1_000 + n))
    path = SymbolPath(
        symbol="BTCUSDT",
        ts=ts,
        returns=returns.tolist(),
        positions=[1.0] * n,
        model_age_s=[3600.0] * n,
        release_ids=["r1"] * n,
        periods_per_year=365.0,
    )
    return PolicyResult(policy=name, settings={}, paths={"BTCUSDT": path})


def _market(seed: int, n: int) -> tuple[np.random.Generator, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng, rng.normal(0.0, 0.01, n)


def test_a_real_edge_over_never_is_better() -> None:
    rng, market = _market(1, 2_000)
    never = _policy("never", market)
    drift = _policy("drift", 0.5 * market + rng.normal(0.0015, 0.008, market.size))
    c = compare_policies([never, drift])
    (t,) = c.tests
    assert (t.policy, t.baseline, t.verdict) == ("drift", "never", "better")
    assert 0 < t.ci_low < t.sharpe_diff < t.ci_high
    assert t.p_adjusted == t.jkm_p < 0.05  # one test: Holm changes nothing
    assert c.summary[0].startswith("drift beats never after costs: Sharpe +")
    assert c.best_policy == "drift" and c.k_policies == 2
    assert c.best_deflated_sharpe > 0.95


def test_two_random_policies_are_indistinguishable() -> None:
    rng, market = _market(2, 2_000)
    never = _policy("never", market + rng.normal(0.0, 0.004, market.size))
    weekly = _policy("weekly", market + rng.normal(0.0, 0.004, market.size))
    c = compare_policies([never, weekly])
    (t,) = c.tests
    assert t.verdict == "indistinguishable"
    assert t.ci_low < 0 < t.ci_high
    assert "No policy is distinguishable from never after costs (2 policies compared)." in (
        c.summary
    )
    assert not any("beats" in line for line in c.summary)


def test_holm_adjusts_hand_checked() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
    with pytest.raises(DataError, match="p-values in"):
        holm([0.1, math.nan])


def test_holm_turns_a_lone_raw_success_among_many_policies_into_indistinguishable() -> None:
    # a small edge whose raw JKM p is < 0.05, among 3 more policies compared with never
    rng, market = _market(10, 1_000)
    results = [_policy("never", market)]
    results.append(_policy("drift", market + rng.normal(0.0003, 0.005, market.size)))
    for i in range(3):
        results.append(_policy(f"noise{i}", market + rng.normal(0.0, 0.005, market.size)))
    c = compare_policies(results, baselines=("never",))
    assert len(c.tests) == 4
    assert [t.p_adjusted for t in c.tests] == pytest.approx(holm([t.jkm_p for t in c.tests]))
    drift = c.tests[0]
    assert drift.policy == "drift" and drift.jkm_p < 0.05 and drift.ci_low > 0
    assert drift.p_adjusted >= 0.05
    assert drift.verdict == "indistinguishable"


def test_pairs_are_tested_once_on_their_common_bars() -> None:
    rng, market = _market(3, 600)
    never = _policy("never", market)
    # nightly starts 100 bars later: it is paired with never on the bars both have
    nightly = _policy("nightly", market[100:] + 0.0, ts=list(range(1_100, 1_600)))
    weekly = _policy("weekly", market + rng.normal(0.0, 0.004, market.size))
    c = compare_policies([never, nightly, weekly])
    pairs = [(t.policy, t.baseline) for t in c.tests]
    assert pairs == [("nightly", "never"), ("weekly", "never"), ("weekly", "nightly")]
    # nightly trades exactly never's returns on the common bars: no difference at all
    assert c.tests[0].sharpe_diff == pytest.approx(0.0, abs=1e-12)
    assert c.tests[0].verdict == "indistinguishable"
    assert c.k_policies == 3


def test_a_flat_policy_cannot_be_tested_and_says_so() -> None:
    _, market = _market(4, 500)
    c = compare_policies([_policy("never", market), _policy("flat", np.zeros(500))])
    (t,) = c.tests
    assert t.verdict == "indistinguishable" and t.p_adjusted == 1.0
    assert math.isnan(t.ci_low) and math.isnan(t.jkm_z)
    assert "flat against never could not be tested: a constant return series." in c.summary


def test_without_a_baseline_there_are_no_tests() -> None:
    _, market = _market(5, 300)
    c = compare_policies([_policy("weekly", market), _policy("drift", market * 0.5)])
    assert c.tests == []
    assert c.summary[0] == (
        "None of the baselines was backtested among the 2 policies: no pairwise tests."
    )


def test_comparison_is_deterministic_given_the_seed() -> None:
    rng, market = _market(6, 800)
    results = [
        _policy("never", market),
        _policy("weekly", market + rng.normal(0.0002, 0.004, market.size)),
    ]
    first = compare_policies(results, seed=7)
    again = compare_policies(results, seed=7)
    other = compare_policies(results, seed=8)
    assert msgspec.msgpack.encode(first) == msgspec.msgpack.encode(again)
    assert first.tests[0].ci_low != other.tests[0].ci_low
    assert first.tests[0].jkm_p == other.tests[0].jkm_p  # the JKM test draws nothing


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"level": 1.0}, "level must be in"), ({"block": 0}, "block must be >= 1")],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    _, market = _market(7, 100)
    with pytest.raises(DataError, match=message):
        compare_policies([_policy("never", market)], **kwargs)  # type: ignore[arg-type]


def test_the_same_policy_twice_is_refused() -> None:
    _, market = _market(8, 100)
    with pytest.raises(DataError, match=r"policies compared twice: \['never'\]"):
        compare_policies([_policy("never", market), _policy("never", market)])


def test_default_block_grows_as_the_cube_root() -> None:
    assert [default_block(n) for n in (1, 8, 1_000, 2_000)] == [1, 2, 10, 13]


def test_paired_bootstrap_keeps_the_pairing() -> None:
    # b is a plus a little noise: resampled together the difference is nearly known;
    # resampled apart the CI is as wide as two independent Sharpe estimates
    rng = np.random.default_rng(9)
    a = rng.normal(0.0, 0.01, 1_000)
    b = a + rng.normal(0.0002, 0.001, a.size)
    paired = bootstrap_sharpe_diff(a, b, paired=True, seed=1)
    apart = bootstrap_sharpe_diff(a, b, seed=1)
    assert paired.paired and not apart.paired
    assert paired.diff == apart.diff
    assert (paired.ci_high - paired.ci_low) * 5 < apart.ci_high - apart.ci_low
    with pytest.raises(DataError, match="paired bootstrap needs series of equal length"):
        bootstrap_sharpe_diff(a, b[:-1], paired=True)


def test_block_bootstrap_widens_for_autocorrelated_returns() -> None:
    # AR(1) with phi = 0.6: the i.i.d. bootstrap understates the spread of the Sharpe
    rng = np.random.default_rng(10)
    n = 3_000
    noise = rng.normal(0.0, 0.01, (2, n))
    x = np.zeros((2, n))
    for i in range(1, n):
        x[:, i] = 0.6 * x[:, i - 1] + noise[:, i]
    iid = bootstrap_sharpe_diff(x[0], x[1], paired=True, seed=2)
    blocks = bootstrap_sharpe_diff(x[0], x[1], paired=True, block=30, seed=2)
    assert blocks.block == 30 and iid.block == 1
    assert blocks.ci_high - blocks.ci_low > 1.4 * (iid.ci_high - iid.ci_low)
    with pytest.raises(DataError, match="block must be between 1 and"):
        bootstrap_sharpe_diff(x[0], x[1], block=n + 1)


def test_a_policy_that_traded_exactly_like_never_is_untestable_not_a_crash() -> None:
    """A triggered policy that never fired trades the warm-up model like `never`: the paired
    test is undefined (zero variance of the difference), the comparison says so."""
    import numpy as np

    from autoopt.backtest.compare import compare_policies
    from autoopt.backtest.result import PolicyResult, SymbolPath

    rng = np.random.default_rng(3)
    r = list(rng.normal(0.0005, 0.01, 500))

    def policy(name: str) -> PolicyResult:
        path = SymbolPath(symbol="X", ts=list(range(1, 501)), returns=r, positions=[1.0] * 500,
                          model_age_s=[0.0] * 500, release_ids=["a"] * 500)
        return PolicyResult(policy=name, settings={}, paths={"X": path})

    cmp = compare_policies([policy("never"), policy("degradation")])
    (test,) = cmp.tests
    assert test.verdict == "indistinguishable"
    assert any("exactly the same way" in line for line in cmp.summary)
