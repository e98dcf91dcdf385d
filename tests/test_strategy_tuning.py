"""Strategy tuning: NSGA-II in nested walk-forward, the Pareto front and its choice rule, the
gate against neutral and current parameters (planted edge gains, random walk refused)."""

from __future__ import annotations

import numpy as np
import pytest

from autoopt.errors import DataError
from autoopt.strategy.gate import judge
from autoopt.strategy.params import StrategyParams
from autoopt.strategy.simulate import MarketInputs
from autoopt.strategy.synthetic import bars_with_probabilities
from autoopt.strategy.tuning import (
    Score,
    Trial,
    TuneSettings,
    choose,
    dominates,
    pareto_front,
    run_study,
    tune_nested,
)
from autoopt.validation.metrics import sharpe_ratio

BAD = StrategyParams(min_hold_bars=8, stop_loss_atr=0.3, take_profit_atr=0.4)
SETTINGS = TuneSettings(n_trials=40, outer_folds=2, cost_bps=10.0, seed=3)


def _inputs(seed: int, edge: bool, n: int = 1500) -> tuple[MarketInputs, np.ndarray]:
    bars, prob = bars_with_probabilities(n, seed, edge=edge)
    return MarketInputs.from_bars(bars, periods_per_year=365.25), prob


def test_planted_edge_with_bad_params_gains_from_tuning_out_of_sample() -> None:
    inputs, prob = _inputs(1, edge=True)
    res = tune_nested("SYN", inputs, prob, current=BAD, settings=SETTINGS)
    ppy = res.periods_per_year
    tuned, current = sharpe_ratio(res.oos_tuned, ppy), sharpe_ratio(res.oos_current, ppy)
    assert tuned > current + 1.0
    assert all(f.tuned.sharpe > f.current.sharpe for f in res.folds)
    verdict = judge(res)
    assert verdict.passed, verdict.reasons
    assert verdict.codes == ["beats_neutral", "beats_current", "dsr_pass", "min_trades_met",
                             "point_chosen"]
    assert res.chosen is not None and res.chosen.entry_threshold > 0.55  # learned to skip noise
    # judged only on bars after each outer study's window
    assert res.oos_ts.size == sum(f.hi - f.lo - 1 for f in res.folds)
    assert res.folds[0].lo == int(inputs.n * SETTINGS.min_train)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_walk_tuned_params_are_refused(seed: int) -> None:
    inputs, prob = _inputs(seed, edge=False)
    res = tune_nested("RW", inputs, prob, current=BAD, settings=SETTINGS)
    verdict = judge(res)
    assert not verdict.passed
    assert "dsr_below_threshold" in verdict.codes


def test_front_is_non_empty_non_dominated_and_the_choice_follows_the_rule() -> None:
    inputs, prob = _inputs(4, edge=True, n=800)
    s = TuneSettings(n_trials=60, cost_bps=10.0, seed=11, drawdown_limit=0.08)
    study = run_study(inputs, prob, 0, inputs.n, s, seed=11)
    assert len(study.trials) == 60 and study.front
    feasible = [t for t in study.trials if t.feasible]
    for f in study.front:
        assert f.feasible
        assert not any(dominates(o.score, f.score) for o in feasible)
    off_front = [t for t in feasible if t not in study.front]
    assert all(any(dominates(f.score, t.score) for f in feasible) for t in off_front)
    c = study.chosen
    assert c is not None
    within = [f for f in study.front if f.score.max_drawdown <= 0.08]
    if within:
        assert c.score.max_drawdown <= 0.08
        assert c.score.sharpe == max(f.score.sharpe for f in within)
    # seeded: the same study again chooses the same point
    again = run_study(inputs, prob, 0, inputs.n, s, seed=11)
    assert again.chosen is not None and again.chosen.params == c.params


def _t(n: int, sharpe: float, dd: float, feasible: bool = True) -> Trial:
    return Trial(n, StrategyParams(), Score(sharpe, dd, 0.1, 1.0, 10), feasible)


def test_choice_rule_on_a_hand_made_front() -> None:
    trials = [_t(0, 2.0, 0.30), _t(1, 1.5, 0.10), _t(2, 1.0, 0.05), _t(3, 0.9, 0.20),
              _t(4, 5.0, 0.01, feasible=False)]
    front = pareto_front(trials)
    assert [t.number for t in front] == [0, 1, 2]  # 3 is dominated by 1; 4 infeasible
    assert choose(front, 0.25)[0].number == 1  # type: ignore[union-attr]
    assert choose(front, 0.50)[0].number == 0  # type: ignore[union-attr]
    chosen, rule = choose(front, 0.01)
    assert chosen is not None and chosen.number == 2 and "smallest drawdown" in rule
    assert choose([], 0.2) == (None, "no feasible trial: nothing to choose")


def test_settings_and_short_history_are_named() -> None:
    with pytest.raises(DataError, match="trials must be >= 1"):
        TuneSettings(n_trials=0)
    inputs, prob = _inputs(1, edge=True, n=60)
    with pytest.raises(DataError, match="too few"):
        tune_nested("SYN", inputs, prob, settings=SETTINGS)


def test_entries_count_new_positions_not_resizes() -> None:
    from autoopt.strategy.tuning import entries

    assert entries(np.array([0.0, 0.5, 0.7, 0.3, 0.0, -1.0, -0.2, 1.0, 1.0])) == 3
