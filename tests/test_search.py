"""The core's search (`autoopt.search`): SDK trainers describe a model family, the core runs the
study. The LightGBM trainer through the core reproduces, trial for trial, the search it ran
itself before the SDK (tests/data/lgbm_tune_reference.json: recorded from that code at commit
2d3b3aa; the losses recorded again when each fold came to be binned on its own training rows,
with the same trial states, parameters and best trials; the states again when the pruner came
to act from the first trial and hold the gate's completed trials at the end of the budget, with
the same best trials and losses)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from autoopt import search
from autoopt.builtins.lgbm_trainer import LightGBMTrainer
from autoopt.errors import ArtifactError, DataError
from autoopt.plugins.interfaces import SearchContext, TrainTask, TrialRecord
from autoopt.registry import ModelRegistry
from autoopt.studies import open_storage
from autoopt.validation.cv import PurgedWalkForward

REFERENCE = Path(__file__).parent / "data" / "lgbm_tune_reference.json"
NAMES = tuple(f"f{i}" for i in range(5))


def _task(n: int = 1500, **kw: Any) -> TrainTask:
    """test_lgbm's rows: f0 and f1 really predict the label."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(n, len(NAMES)))
    p_up = 1.0 / (1.0 + np.exp(-(1.5 * X[:, 0] - 1.0 * X[:, 1])))
    y = (rng.random(n) < p_up).astype(np.int8)
    fwd = 0.002 * (2 * y - 1) + 0.004 * rng.normal(size=n)
    folds = tuple(PurgedWalkForward(n_splits=3, test_size=0.15, embargo=5,
                                    min_train_size=300).split(n))
    base = dict(symbol="SYN", X=X, y=y, feature_names=NAMES, folds=folds, forward_returns=fwd,
                periods_per_year=252.0, n_trials=3, seed=3, threads=1, pruning=False)
    return TrainTask(**(base | kw))


@pytest.mark.parametrize("case", ["pruned_sh", "median_2threads"])
def test_lightgbm_through_the_core_reproduces_its_own_search(case: str) -> None:
    ref = json.loads(REFERENCE.read_text())[case]
    task = dict(ref["task"])
    seen: list[TrialRecord] = []
    # the settings the reference was recorded with, pinned: fixed patience, reduction factor 3
    # (the defaults since changed: bench_retrain.py)
    old = {"early_stopping_scale": None, "reduction_factor": 3} | ref["trainer"]
    result = search.tune(LightGBMTrainer(**old),
                         _task(task.pop("n"), on_trial=seen.append, **task))
    got = [{"number": t.number, "state": t.state, "params": t.params, "value": t.value,
            "user_attrs": t.user_attrs} for t in result.trials]
    assert got == ref["trials"]  # states (pruned ones too), parameters, values, Sharpe ratios
    assert [r.number for r in seen] == [t["number"] for t in ref["trials"]]
    assert result.params == ref["params"]
    assert (result.best_trial, result.best_value) == (ref["best_trial"], ref["best_value"])
    assert {str(k): [float(v.astype(np.float64).sum()), int(v.size)]
            for k, v in sorted(result.trial_returns.items())} == ref["returns"]


class Ridge:
    """A minimal SDK trainer: least squares on the label, squashed, JSON artifacts."""

    name = "ridge"
    model_type = "ridge"
    max_steps = 10

    def __init__(self) -> None:
        self.reports: list[tuple[int, float]] = []

    def search_space(self, trial: Any, ctx: SearchContext) -> dict[str, Any]:
        return {"alpha": trial.suggest_float("alpha", 1e-3, 1e6, log=True),
                "scale": 4.0 if ctx.n_features else 1.0}

    def fit(self, X: np.ndarray, y: np.ndarray, params: Mapping[str, Any], *,
            feature_names: Sequence[str], seed: int = 42, threads: int = 1,
            valid: tuple[np.ndarray, np.ndarray] | None = None, report: Any = None) -> dict:
        del feature_names, seed, threads
        A = np.column_stack((X, np.ones(len(X))))
        w = np.linalg.solve(A.T @ A + params["alpha"] * np.eye(A.shape[1]), A.T @ (2 * y - 1.0))
        model = {"w": w.tolist(), "scale": params["scale"]}
        if report is not None and valid is not None:
            for step in range(1, 4):  # as an iterative learner would, while it trains
                loss = float(np.mean((self.predict(model, valid[0]) - valid[1]) ** 2)) + 1 / step
                self.reports.append((step, loss))
                report(step, loss)
        return model

    def predict(self, model: dict, X: np.ndarray) -> np.ndarray:
        z = np.column_stack((X, np.ones(len(X)))) @ np.asarray(model["w"])
        return 1.0 / (1.0 + np.exp(-model["scale"] * z))

    def save(self, model: dict) -> dict[str, bytes]:
        return {"ridge.json": json.dumps(model).encode()}

    def load(self, files: Mapping[str, bytes]) -> dict:
        return json.loads(files["ridge.json"])


def test_an_sdk_trainer_gets_the_whole_search_from_the_core(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    trainer = Ridge()
    seen: list[TrialRecord] = []
    task = _task(n_trials=6, pruning=True, pruner="median", min_completed_trials=2,
                 storage=storage, study_name="ridge", on_trial=seen.append,
                 study_attrs={"symbol": "SYN"})
    result = search.tune(trainer, task)
    assert [r.number for r in seen] == list(range(6)) and result.n_trials == 6
    complete = [t for t in result.trials if t.state == "COMPLETE"]
    assert len(complete) >= 2 and len(result.trial_sharpes()) == len(complete)
    for t in complete:  # the core's metrics: the objective and the Sharpe of the OOS path
        assert set(t.user_attrs) >= {"sharpe_per_period", "sharpe", "n_trades", "fixed_params"}
        assert t.user_attrs["fixed_params"] == {"scale": 4.0}
    best = min(complete, key=lambda t: (t.value, t.number))
    assert result.params == {"alpha": best.params["alpha"], "scale": 4.0}
    assert result.best_value < np.log(2)  # the signal is real
    # the trainer's in-fit reports reached the study: fold k's step s is k * max_steps + s
    study = optuna.load_study(study_name="ridge", storage=open_storage(storage))
    steps = set(study.trials[0].intermediate_values)
    assert {1, 2, 3, 10, 11, 12, 13, 20} <= steps
    assert study.user_attrs["symbol"] == "SYN"
    # resumed: only the missing trials run, numbered on
    more: list[TrialRecord] = []
    again = search.tune(trainer, TrainTask(**{**task.__dict__, "n_trials": 8,
                                               "on_trial": more.append}))
    assert [r.number for r in more] == [6, 7] and again.n_trials == 8


def test_an_sdk_trainer_fits_saves_and_loads_through_the_adapter(tmp_path: Path) -> None:
    adapted = search.as_trainer(Ridge())
    assert search.as_trainer(adapted) is adapted
    task = _task()
    params = adapted.default_params(1000)  # no default_params: one seeded sample of the space
    assert set(params) == {"alpha", "scale"}
    model = adapted.fit(task.X, task.y, params, NAMES, seed=1)
    assert model.feature_names == NAMES and set(model.importance()) == set(NAMES)
    registry = ModelRegistry(tmp_path)
    manifest = registry.save("SYN", model.to_files(), model_type="ridge", created_at=1,
                             features=NAMES, data_range=(0, 1))
    loaded = adapted.load(registry.load("SYN", manifest.release_id)[1])
    assert loaded.feature_names == NAMES
    assert np.array_equal(loaded.predict_proba(task.X), model.predict_proba(task.X))
    with pytest.raises(ArtifactError, match=search.FEATURES_FILE):
        adapted.load({"ridge.json": b"{}"})
    with pytest.raises(DataError, match="expects 5 features"):
        loaded.predict_proba(task.X[:, :2])


def test_a_legacy_trainer_is_used_as_it_is() -> None:
    class Legacy:
        name = "legacy"
        model_type = "legacy"

        def tune(self, task: TrainTask) -> Any:
            return task

    legacy = Legacy()
    assert search.as_trainer(legacy) is legacy


def test_one_class_fold_is_a_data_error() -> None:
    task = _task()
    y = task.y.copy()
    y[task.folds[0][0]] = 1
    with pytest.raises(DataError, match="fold 0 training labels hold one class only"):
        search.tune(Ridge(), TrainTask(**{**task.__dict__, "y": y}))


def test_the_core_prunes_an_sdk_trainers_bad_trial(
        tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    trainer = Ridge()
    task = _task(storage=storage, study_name="prune", n_trials=5, pruning=True, pruner="median",
                 min_completed_trials=3)
    study = search.open_search_study(trainer, task)
    for alpha in (0.01, 0.02, 0.03, 0.04):
        study.enqueue_trial({"alpha": alpha})
    study.enqueue_trial({"alpha": 1e5})  # shrunk to a coin flip: the worst of all
    seen: list[TrialRecord] = []
    search.tune(trainer, TrainTask(**{**task.__dict__, "on_trial": seen.append}))
    assert [r.state for r in seen] == ["COMPLETE"] * 4 + ["PRUNED"]
    bad = optuna.load_study(study_name="prune", storage=open_storage(storage)).trials[4]
    assert max(bad.intermediate_values) < 2 * Ridge.max_steps  # stopped in its second fold


def test_the_time_budget_stops_the_search_on_the_injected_clock() -> None:
    ticks = iter(range(1000))  # one second per look at the clock
    result = search.tune(Ridge(), _task(n_trials=10, time_budget_s=3.5),
                         clock=lambda: float(next(ticks)))
    assert result.n_trials == 3  # 1, 2, 3 s after the start: run; 4 s > 3.5 s: no fourth
