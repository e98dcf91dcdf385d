"""Release gate: each rule on its own, then the whole gate against a real search on data with and
without an edge (the cheap cousin of scripts/eval_gate_random_walk.py)."""

from __future__ import annotations

import numpy as np
import pytest

from autoopt.errors import ConfigError, ValidationRejected
from autoopt.validation.cv import PurgedWalkForward
from autoopt.validation.dsr import probabilistic_sharpe_ratio, sharpe_moments
from autoopt.validation.gate import GateConfig, evaluate_gate
from autoopt.validation.metrics import StrategyMetrics, strategy_metrics


def _fold(sharpe: float, n_trades: int = 20, max_drawdown: float = 0.1) -> dict[str, float]:
    return {"sharpe": sharpe, "n_trades": n_trades, "max_drawdown": max_drawdown}


@pytest.fixture
def edge_returns() -> np.ndarray:
    """Per-period returns with SR ≈ 0.2 over 1000 periods: clears any reasonable DSR bar."""
    rng = np.random.default_rng(1)
    return rng.normal(0.002, 0.01, 1000)


def test_all_rules_pass_without_champion(edge_returns: np.ndarray) -> None:
    v = evaluate_gate([_fold(1.5), _fold(1.2)], None, edge_returns, n_trials=1)
    assert v.passed
    assert v.codes == ["no_champion", "dsr_pass", "min_trades_met"]
    assert v.stats["n_trades"] == 40 and v.stats["dsr"] > 0.99
    v.raise_if_refused()


def test_champion_margin_on_same_folds(edge_returns: np.ndarray) -> None:
    cfg = GateConfig(margin=0.2)
    champ = [_fold(1.0), _fold(1.1)]
    ok = evaluate_gate([_fold(1.3), _fold(1.2)], champ, edge_returns, 1, config=cfg)
    assert ok.passed and ok.codes[0] == "beats_champion"
    assert ok.stats["improvement"] == pytest.approx(0.2)
    close = evaluate_gate([_fold(1.2), _fold(1.1)], champ, edge_returns, 1, config=cfg)
    assert not close.passed and close.codes[0] == "below_champion_margin"
    # the figure is the mean of the per-fold values, not the pooled out-of-sample one, and says so
    assert close.reasons[0].message.startswith("mean per-fold sharpe improves by 0.1,")
    mismatch = evaluate_gate([_fold(3.0)] * 3, champ, edge_returns, 1, config=cfg)
    assert not mismatch.passed and mismatch.codes[0] == "fold_mismatch"
    # lower is better for drawdown: 0.05 vs 0.10 beats a 0.02 margin
    dd = GateConfig(metric="max_drawdown", margin=0.02)
    better = evaluate_gate([_fold(0, max_drawdown=0.05)], [_fold(0)], edge_returns, 1, config=dd)
    assert better.codes[0] == "beats_champion"


def test_dsr_deflates_by_number_of_trials() -> None:
    z = np.random.default_rng(2).normal(size=1500)
    r = 0.0006 + 0.01 * (z - z.mean()) / z.std(ddof=1)  # SR = 0.06 per period exactly
    sr = sharpe_moments(r)[0]
    assert sr == pytest.approx(0.06)
    assert probabilistic_sharpe_ratio(sr, 0.0, r.size) > 0.95
    single = evaluate_gate([_fold(1.0)], None, r, n_trials=1)
    assert single.passed
    many = evaluate_gate([_fold(1.0)], None, r, n_trials=100, sr_variance=(1 / r.size))
    assert not many.passed and "dsr_below_threshold" in many.codes
    assert many.stats["expected_max_sr"] > sr
    # without sr_variance the benchmark uses the null variance of this return path
    null = evaluate_gate([_fold(1.0)], None, r, n_trials=100)
    assert null.stats["sr_variance"] >= 1 / (r.size - 1)


def test_too_few_trades_and_rejection_error(edge_returns: np.ndarray) -> None:
    m = strategy_metrics([1.0] * 10, [0.01] * 10, periods_per_year=252)
    assert isinstance(m.metrics, StrategyMetrics) and m.metrics.n_trades == 1
    v = evaluate_gate([m.metrics], None, edge_returns, 1, config=GateConfig(min_trades=5))
    assert not v.passed and v.codes[-1] == "too_few_trades"
    with pytest.raises(ValidationRejected) as exc:
        v.raise_if_refused()
    assert exc.value.reasons == ["too_few_trades"] and "1 trades < 5" in str(exc.value)
    with pytest.raises(ConfigError, match="dsr_threshold"):
        GateConfig(dsr_threshold=1.5)
    with pytest.raises(ConfigError, match="no metric 'calmar'"):
        evaluate_gate([_fold(1.0)], None, edge_returns, 1, config=GateConfig(metric="calmar"))


# --------------------------------------------------------------------------- search vs the gate

LAGS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16)  # one trial per lag count: N = 10


def _lagged(r: np.ndarray, k: int) -> np.ndarray:
    """Row t holds r[t], r[t-1], ..., r[t-k+1] (known at the close of bar t); zeros before the start."""
    out = np.zeros((r.size, k))
    for j in range(k):
        out[j:, j] = r[: r.size - j]
    return out


def _search(log_ret: np.ndarray, fee_bps: float) -> tuple[list, np.ndarray, int]:
    """Ridge on lagged returns, one trial per lag count, scored by purged walk-forward CV.

    Returns (best trial's fold metrics, best OOS returns, n_trials).
    """
    fwd = np.expm1(np.concatenate((log_ret[1:], [0.0])))  # return over the next bar
    n = log_ret.size - 1  # the last bar has no forward return
    cv = PurgedWalkForward(n_splits=4, test_size=300, embargo=2, min_train_size=200)
    t1 = np.arange(n) + 1  # each label looks one bar ahead
    trials = []
    for k in LAGS:
        x = _lagged(log_ret, k)[:n]
        folds, rets = [], []
        for train, test in cv.split(n, t1):
            mu, sd = x[train].mean(0), x[train].std(0) + 1e-12
            a = np.column_stack((np.ones(train.size), (x[train] - mu) / sd))
            coef = np.linalg.solve(a.T @ a + 1.0 * np.eye(k + 1), a.T @ fwd[train])
            pred = np.column_stack((np.ones(test.size), (x[test] - mu) / sd)) @ coef
            res = strategy_metrics(np.sign(pred), fwd[test], 24 * 365, fee_bps=fee_bps)
            folds.append(res.metrics)
            rets.append(res.returns)
        oos = np.concatenate(rets)
        trials.append((np.mean([f.sharpe for f in folds]), folds, oos))
    best = max(range(len(trials)), key=lambda i: trials[i][0])
    return trials[best][1], trials[best][2], len(trials)


def _gate_search(log_ret: np.ndarray, fee_bps: float):
    folds, oos, n_trials = _search(log_ret, fee_bps)
    naive = probabilistic_sharpe_ratio(*_psr_args(oos)) >= 0.95  # best trial, no deflation
    verdict = evaluate_gate(folds, None, oos, n_trials, config=GateConfig(min_trades=10))
    return verdict, naive


def _psr_args(oos: np.ndarray) -> tuple[float, float, int, float, float]:
    sr, n, skew, kurt = sharpe_moments(oos)
    return sr, 0.0, n, skew, kurt


def test_gate_refuses_random_walks() -> None:
    """No edge exists; the best of N trials must still be refused in >= 95% of seeds.

    Costs are zero here so the refusals come from the DSR, not from fees eating the returns.
    """
    refused, naive_passes = 0, 0
    for seed in range(20):
        rng = np.random.default_rng(1000 + seed)
        log_ret = rng.normal(0.0, 0.01, 1700)  # geometric random walk, no drift
        verdict, naive = _gate_search(log_ret, fee_bps=0.0)
        refused += not verdict.passed
        naive_passes += naive
        if not verdict.passed:
            assert "dsr_below_threshold" in verdict.codes
    assert refused / 20 >= 0.95
    # without deflation (PSR against 0 for the best trial) some seeds would have been released:
    # the refusals are the DSR's doing
    assert naive_passes > 20 - refused


def test_gate_passes_a_real_edge() -> None:
    """Same search on AR(1) returns (φ = 0.2): a lag-1 signal exists and must get through."""
    passed = 0
    for seed in range(5):
        rng = np.random.default_rng(2000 + seed)
        eps = rng.normal(0.0, 0.01, 1700)
        log_ret = np.empty_like(eps)
        log_ret[0] = eps[0]
        for t in range(1, eps.size):
            log_ret[t] = 0.2 * log_ret[t - 1] + eps[t]
        verdict, _ = _gate_search(log_ret, fee_bps=1.0)
        passed += verdict.passed
    assert passed == 5


def test_champion_is_compared_on_the_concatenated_path_not_on_fold_means() -> None:
    """A challenger that wins on the mean of per-fold Sharpes but loses on the path it would
    have traded (one calm winning fold, one volatile losing fold) is refused when the paths are
    given: the gate judges what could have been traded."""
    from autoopt.validation.metrics import sharpe_ratio

    rng = np.random.default_rng(7)
    calm_win = 0.001 + 0.0001 * rng.standard_normal(250)
    wild_loss = -0.004 + 0.05 * rng.standard_normal(250)
    steady = 0.0005 + 0.01 * rng.standard_normal(500)
    challenger = np.concatenate([calm_win, wild_loss])
    folds = [(0, 250), (250, 500)]

    def per_fold(r: np.ndarray) -> list[dict[str, float]]:
        return [{"sharpe": sharpe_ratio(r[a:b], 252.0), "n_trades": 50.0} for a, b in folds]

    ch_folds, cp_folds = per_fold(challenger), per_fold(steady)
    mean = lambda fs: np.mean([f["sharpe"] for f in fs])  # noqa: E731
    assert mean(ch_folds) > mean(cp_folds)  # fold means favour the challenger...
    assert sharpe_ratio(challenger, 252.0) < sharpe_ratio(steady, 252.0)  # ...its path does not
    cfg = GateConfig(margin=0.0)

    by_means = evaluate_gate(ch_folds, cp_folds, challenger, 1, config=cfg)
    assert by_means.reasons[0].code == "beats_champion"
    assert "mean per-fold sharpe" in by_means.reasons[0].message

    by_path = evaluate_gate(ch_folds, cp_folds, challenger, 1, config=cfg,
                            champion_returns=steady, periods_per_year=252.0)
    rule = by_path.reasons[0]
    assert rule.code == "below_champion_margin" and not by_path.passed
    assert "sharpe on the out-of-sample path" in rule.message
    assert by_path.stats["challenger_path"] == pytest.approx(sharpe_ratio(challenger, 252.0))
    assert by_path.stats["champion_path"] == pytest.approx(sharpe_ratio(steady, 252.0))


def test_a_recipes_return_figures_come_from_its_path_and_scores_from_fold_means() -> None:
    from autoopt.pipeline.scoring import summarise
    from autoopt.validation.metrics import max_drawdown, sharpe_ratio

    rng = np.random.default_rng(3)
    r = 0.0005 + 0.01 * rng.standard_normal(400)
    pos = np.sign(rng.standard_normal(400))
    folds = [{"accuracy": 0.5, "sharpe": 9.0, "max_drawdown": 0.0, "n_trades": 10.0},
             {"accuracy": 0.7, "sharpe": -9.0, "max_drawdown": 0.0, "n_trades": 30.0}]
    out = summarise(folds, path=(pos, r), periods_per_year=252.0)
    assert out["accuracy"] == pytest.approx(0.6)  # a classification score: fold mean
    assert out["n_trades"] == 40.0  # counts: summed
    assert out["sharpe"] == pytest.approx(sharpe_ratio(r, 252.0))  # the path's, not 0.0
    assert out["max_drawdown"] == pytest.approx(max_drawdown(r))
