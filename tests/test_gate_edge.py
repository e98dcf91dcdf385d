"""A strong real edge is released and luck is refused (issue: pruning starved the gate, and the
luck benchmark grew with the edge itself).

Real `run_retrain` (features, labels, Optuna + LightGBM with the default pruner, purged CV, the
gate) on seeded synthetic bars from `autoopt.synthetic.planted_bars`, against a real nats-server.
"""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import numpy as np
import optuna
import polars as pl
import pytest
from scipy import stats

from autoopt.config import Config, PipelineConfig
from autoopt.events import TrialCompleted, ValidationVerdict
from autoopt.log import EventLog, NatsSettings
from autoopt.pipeline import run_retrain
from autoopt.synthetic import STRONG_PERSISTENCE, planted_bars
from autoopt.tuning import CompletedFirstPruner, make_pruner, pruning_budget_note
from autoopt.validation.dsr import (
    EULER_GAMMA,
    expected_max_sharpe,
    long_run_variance_ratio,
    null_sharpe_variance,
)
from autoopt.validation.gate import evaluate_gate

# ----------------------------------------------------------------------- the luck benchmark


def test_luck_benchmark_hand_worked() -> None:
    """Worked by hand: returns 1, 2, 3, 4 (T = 4): demeaned -1.5 -0.5 0.5 1.5, sum of squares 5;
    Newey-West lags q = floor(4 (4/100)^(2/9)) = 1; lag-1 autocovariance sum 0.75 - 0.25 + 0.75 =
    1.25, rho_1 = 0.25; ratio = 1 + 2 (1 - 1/2) 0.25 = 1.25; V = 1.25 / (T - 1) = 0.41667.
    Then N = 10 trials with V = 1/400: E[max] = 0.05 ((1 - g) z(0.9) + g z(1 - 1/(10e)))
    = 0.05 (0.54181 + 1.03278) = 0.07873."""
    assert long_run_variance_ratio([1.0, 2.0, 3.0, 4.0]) == pytest.approx(1.25)
    assert null_sharpe_variance([1.0, 2.0, 3.0, 4.0]) == pytest.approx(1.25 / 3)
    assert stats.norm.ppf(1 - 1 / (10 * math.e)) == pytest.approx(1.78924, abs=1e-5)
    assert 1 - EULER_GAMMA == pytest.approx(0.42278, abs=1e-5)
    assert expected_max_sharpe(10, 1 / 400) == pytest.approx(0.07873, abs=1e-5)


def test_null_variance_is_one_over_t_for_iid_and_wider_for_autocorrelated() -> None:
    rng = np.random.default_rng(5)
    iid = rng.normal(0.0, 0.01, 5_000)
    assert null_sharpe_variance(iid) == pytest.approx(1 / 4_999, rel=0.1)
    ar = np.empty(5_000)
    ar[0] = iid[0]
    for t in range(1, ar.size):
        ar[t] = 0.5 * ar[t - 1] + iid[t]  # long-run variance ratio (1 + 0.5)/(1 - 0.5) = 3
    assert 2.0 < long_run_variance_ratio(ar) < 3.3
    # negative autocorrelation never makes the benchmark easier than i.i.d.
    assert long_run_variance_ratio(np.diff(iid)) == 1.0


def test_benchmark_does_not_grow_with_the_edge() -> None:
    """The same return path gets the same benchmark whatever the other trials scored: the
    variance comes from the path, not from the trials' spread (which is skill when some
    trials exploit an edge)."""
    rng = np.random.default_rng(9)
    r = 0.0008 + rng.normal(0.0, 0.01, 2_000)
    fold = {"sharpe": 1.0, "n_trades": 100}
    v = evaluate_gate([fold], None, r, n_trials=8, trial_counts={"completed": 3, "pruned": 5})
    assert v.stats["sr_variance"] == pytest.approx(null_sharpe_variance(r))
    assert v.stats["trials_pruned"] == 5 and v.stats["n_trials"] == 8
    msg = next(x.message for x in v.reasons if x.rule == "dsr")
    assert "8 trials started (3 completed, 5 pruned, 0 failed)" in msg
    assert "null variance of the Sharpe estimator" in msg


# ----------------------------------------------------------------------------- the pruner


def _curve_objective(trial: optuna.Trial) -> float:
    """Each trial's curve is worse than every earlier one: any pruner would stop it early."""
    for step in range(1, 31):
        trial.report(trial.number + 1.0 / step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return float(trial.number)


@pytest.mark.parametrize("kind", ["successive_halving", "median", "hyperband"])
def test_pruner_leaves_min_completed_trials(kind: str) -> None:
    pruner = make_pruner(kind, enabled=True, warmup_steps=2, interval_steps=1, min_resource=2,
                         max_resource=30, min_completed=4)
    assert isinstance(pruner, CompletedFirstPruner)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(_curve_objective, n_trials=10)
    states = [t.state for t in study.trials]
    assert states[:4] == [optuna.trial.TrialState.COMPLETE] * 4
    assert optuna.trial.TrialState.PRUNED in states[4:]  # pruning does start afterwards


def test_budget_too_small_for_pruner_is_said_up_front() -> None:
    line = pruning_budget_note(3, pruning=True, pruner="successive_halving", min_completed=4)
    assert line is not None and "3 trials" in line and "min_completed_trials=4" in line
    assert pruning_budget_note(8, pruning=True, pruner="median", min_completed=4) is None
    assert pruning_budget_note(2, pruning=False, pruner="median", min_completed=4) is None


# ------------------------------------------------------------------- real retrains, end to end


async def _retrain(tmp: Path, url: str, frame: pl.DataFrame, symbol: str, seed: int,
                   pruner: str = "successive_halving", trials: int = 8):
    path = tmp / f"{symbol}.csv"
    frame.with_columns(pl.from_epoch("ts", time_unit="ns")).write_csv(path)
    cfg = msgspec.structs.replace(
        Config(data_dir=str(tmp / f"data-{symbol}")),
        pipeline=PipelineConfig(trials=trials, pruner=pruner, seed=seed))
    log = await EventLog.connect(NatsSettings(urls=[url]))
    try:
        summary = await run_retrain(cfg, source=f"file:{path}", event_log=log)
        verdicts = [e async for e in log.replay(f"autoopt.model.verdict.{symbol}")]
        trials_ev = [e async for e in log.replay("TRAINING")
                     if isinstance(e, TrialCompleted) and e.symbol == symbol]
    finally:
        await log.close()
    (result,) = summary.results
    (verdict,) = verdicts
    assert isinstance(verdict, ValidationVerdict)
    return result, verdict, trials_ev


@pytest.mark.slow
@pytest.mark.parametrize("freq", ["daily", "hourly"])
@pytest.mark.parametrize("pruner", ["successive_halving", "median", "hyperband"])
async def test_strong_planted_edge_is_deployed(tmp_path: Path, nats_server: str, freq: str,
                                               pruner: str) -> None:
    """Default configuration, 8 trials, each pruner kind: the strong edge is released, and the
    verdict's N is every trial started (completed + pruned + failed), as the log shows."""
    for seed in (0, 1):
        symbol = f"EDGE{freq[0].upper()}{seed}"
        frame = planted_bars(seed, freq, STRONG_PERSISTENCE)
        result, verdict, trials_ev = await _retrain(tmp_path, nats_server, frame, symbol, seed,
                                                    pruner)
        assert result.deployed, result.reasons
        assert verdict.passed
        assert verdict.n_trials == len(trials_ev) == 8
        m = verdict.metrics
        started = m["trials_completed"] + m["trials_pruned"] + m["trials_failed"]
        assert started == 8 and m["trials_completed"] >= 4
        dsr_reason = next(r for r in verdict.reasons if r.startswith("dsr_pass"))
        assert "8 trials started" in dsr_reason and "V[SR]" in dsr_reason


@pytest.mark.slow
@pytest.mark.parametrize("freq", ["daily", "hourly"])
async def test_random_walks_are_not_deployed(tmp_path: Path, nats_server: str, freq: str) -> None:
    """Same settings, no edge (persistence 0.5): at most 1 false deploy in 20 seeds (5%)."""
    deployed = []
    for seed in range(20):
        symbol = f"RW{freq[0].upper()}{seed}"
        frame = planted_bars(100 + seed, freq, 0.5, n=2_000)
        result, verdict, _ = await _retrain(tmp_path, nats_server, frame, symbol, seed)
        assert verdict.passed == result.deployed
        deployed.append(result.deployed)
    assert sum(deployed) <= 1, deployed
