"""Issue 16's decision tools, checked against hand-computed answers: CPCV splits, paths, purge
and embargo; PBO by CSCV on a worked example; the effective number of trials; the holdout cut."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoopt.errors import ConfigError, DataError
from autoopt.validation.cpcv import CombinatorialPurgedCV
from autoopt.validation.gate import GateConfig, evaluate_gate
from autoopt.validation.holdout import HoldoutFigures, split_holdout
from autoopt.validation.ledger import Signature, effective_trials, signature
from autoopt.validation.pbo import probability_of_backtest_overfitting

# ------------------------------------------------------------------------------------- CPCV


@pytest.mark.parametrize(("n", "k"), [(6, 2), (5, 2), (4, 1), (6, 3)])
def test_cpcv_split_and_path_counts(n: int, k: int) -> None:
    cv = CombinatorialPurgedCV(n, k)
    splits = list(cv.split(60))
    assert len(splits) == math.comb(n, k) == cv.n_splits
    assert cv.n_paths == math.comb(n, k) * k // n == math.comb(n - 1, k - 1)
    # every group is tested exactly n_paths times, and every path covers every row once
    tested = np.zeros(60, dtype=int)
    for _, test in splits:
        tested[test] += 1
    assert np.all(tested == cv.n_paths)
    paths = cv.paths(60, [test.astype(float) for _, test in splits])
    assert len(paths) == cv.n_paths
    for p in paths:
        np.testing.assert_array_equal(p, np.arange(60, dtype=float))


def test_cpcv_purge_and_embargo_hand_computed() -> None:
    # 12 rows, 3 groups of 4: [0,4) [4,8) [8,12); labels look 2 rows ahead (t1 = i + 2)
    t1 = np.arange(12) + 2
    cv = CombinatorialPurgedCV(3, 1, embargo=1)
    (tr0, te0), (tr1, te1), (tr2, te2) = list(cv.split(12, t1))
    # test group 0: no purge before it; embargo drops row 4 (right after the group)
    assert te0.tolist() == [0, 1, 2, 3]
    assert tr0.tolist() == [5, 6, 7, 8, 9, 10, 11]
    # test group 1 [4,8): rows 2,3 purged (t1 = 4,5 reach into it), row 8 embargoed
    assert te1.tolist() == [4, 5, 6, 7]
    assert tr1.tolist() == [0, 1, 9, 10, 11]
    # test group 2 [8,12): rows 6,7 purged (t1 = 8,9); nothing after it to embargo
    assert tr2.tolist() == [0, 1, 2, 3, 4, 5]
    assert te2.tolist() == [8, 9, 10, 11]


def test_cpcv_paths_assemble_by_split_order() -> None:
    # N=3, k=2: splits (0,1) (0,2) (1,2); group 0 is in splits 0,1 -> paths 0,1, etc.
    cv = CombinatorialPurgedCV(3, 2)
    assert cv.path_assignment() == [[0, 0, 1], [1, 2, 2]]
    rets = [np.full(8, float(j)) for j in range(3)]  # split j's returns are all j
    p0, p1 = cv.paths(12, rets)
    assert p0.tolist() == [0.0] * 4 + [0.0] * 4 + [1.0] * 4
    assert p1.tolist() == [1.0] * 4 + [2.0] * 4 + [2.0] * 4


def test_cpcv_bad_settings_are_one_line() -> None:
    with pytest.raises(ConfigError, match="n_test_groups"):
        CombinatorialPurgedCV(4, 4)
    with pytest.raises(DataError, match="cannot make 6 groups"):
        list(CombinatorialPurgedCV(6, 2).split(5))


# -------------------------------------------------------------------------------------- PBO


def test_pbo_hand_worked_example() -> None:
    """Two trials, S = 2 blocks of 3 rows: C(2,1) = 2 combinations.

    Trial A earns (1, 2, 3) then (-1, -2, -3); trial B earns (-1, 0, -1) then (1, 0, 1).
    Sharpe (mean/sd, ddof=1): A block 1 = 2/1 = 2, A block 2 = -2; B block 1 = (-2/3)/0.577 =
    -1.155, B block 2 = +1.155. IS = block 1: A wins IS, OOS A = -2 < B = 1.155: rank 1 of 2,
    ω = 1/3, λ = ln(1/2) < 0. IS = block 2: B wins IS, OOS (block 1) B = -1.155 < A = 2:
    rank 1, λ < 0. PBO = 2/2 = 1; the IS winner lost money OOS both times.
    """
    m = np.array([[1, -1], [2, 0], [3, -1], [-1, 1], [-2, 0], [-3, 1]], dtype=float)
    res = probability_of_backtest_overfitting(m, n_partitions=2)
    assert res.n_combinations == 2
    assert res.pbo == 1.0 and res.prob_loss == 1.0
    assert res.logits == pytest.approx([math.log(0.5), math.log(0.5)])
    # a trial that is better in both halves is always chosen and stays best: PBO 0
    m2 = np.column_stack([m[:, 1] + 5.0 + np.array([0, .1, 0, 0, .1, 0]), m[:, 1]])
    res2 = probability_of_backtest_overfitting(m2, n_partitions=2)
    assert res2.pbo == 0.0
    assert res2.logits == pytest.approx([math.log(2.0), math.log(2.0)])


def test_pbo_of_noise_is_near_one_half_and_of_skill_near_zero() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, (800, 10))
    assert 0.2 < probability_of_backtest_overfitting(noise, 8).pbo < 0.8
    skill = noise.copy()
    skill[:, 3] += 0.3  # one trial with a real edge
    assert probability_of_backtest_overfitting(skill, 8).pbo < 0.05


def test_pbo_bad_input_is_one_line() -> None:
    with pytest.raises(DataError, match="even"):
        probability_of_backtest_overfitting(np.zeros((40, 3)), 3)
    with pytest.raises(DataError, match=">= 2 trials"):
        probability_of_backtest_overfitting(np.zeros((40, 1)), 4)


# ----------------------------------------------------------------------------- effective N

DAY = 86_400 * 10**9


def test_signature_sums_per_day() -> None:
    ts = np.array([0, DAY // 2, DAY, DAY + 1, 3 * DAY])
    sig = signature(ts, np.array([0.1, 0.2, -0.1, 0.05, 0.3]))
    assert sig.days == [0, 1, 3]
    assert sig.returns == pytest.approx([0.3, -0.05, 0.3])


def test_effective_trials_counts_clusters_not_copies() -> None:
    rng = np.random.default_rng(1)
    days = list(range(100))
    a, b, c = (rng.normal(0, 1, 100) for _ in range(3))
    # three independent strategies, each tried 4 times with small perturbations: 12 raw, 3 real
    sigs = [Signature(days, list(base + rng.normal(0, 0.1, 100)))
            for base in (a, b, c) for _ in range(4)]
    eff = effective_trials(12, sigs)
    assert eff.n_raw == 12 and eff.n_clusters == 3 and eff.n_effective == pytest.approx(3.0)
    assert len(set(eff.labels[:4])) == 1 and len(set(eff.labels)) == 3
    # 4 more entries without a series (pruned): counted in proportion
    eff2 = effective_trials(16, sigs)
    assert eff2.n_effective == pytest.approx(3 * 16 / 12)
    # one family only: one independent trial
    one = effective_trials(4, sigs[:4])
    assert one.n_clusters == 1 and one.n_effective == 1.0


# ---------------------------------------------------------------------------------- holdout


def test_holdout_split_purges_labels_reaching_into_it() -> None:
    t1 = np.arange(100) + 3  # labels look 3 rows ahead
    split = split_holdout(100, t1, 0.2, embargo=2)
    assert split is not None
    assert split.start == 80 and split.size == 20
    # rows 77..79 have t1 >= 80 (purged), then 2 rows of embargo: development is [0, 75)
    assert split.dev_end == 75
    assert split_holdout(100, t1, 0.0) is None
    with pytest.raises(ConfigError, match="holdout fraction"):
        split_holdout(100, t1, 1.2)


def test_gate_refuses_on_the_holdout_with_that_reason() -> None:
    rng = np.random.default_rng(2)
    returns = rng.normal(0.002, 0.01, 500)
    folds = [{"sharpe": 2.0, "n_trades": 50}] * 3
    good = HoldoutFigures(0.1, 1.6, 0.05, 20, 100, 0.9)
    bad = HoldoutFigures(-0.05, -0.8, -0.02, 20, 100, 0.3)
    ok = evaluate_gate(folds, None, returns, 1, holdout=good, config=GateConfig(min_trades=0))
    assert ok.passed and "holdout_pass" in ok.codes
    no = evaluate_gate(folds, None, returns, 1, holdout=bad, config=GateConfig(min_trades=0))
    assert not no.passed and [r.code for r in no.failures] == ["holdout_failed"]
    assert no.stats["holdout_sr"] == -0.05 and "cross-validated" in no.failures[0].message
