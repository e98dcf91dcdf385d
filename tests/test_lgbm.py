"""The LightGBM trainer plugin through the core's search (`autoopt.search`): real LightGBM,
real Optuna, real SQLite studies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from autoopt import search
from autoopt.builtins.lgbm import MODEL_FILE, LightGBMTrainer, make_pruner
from autoopt.errors import ArtifactError, ConfigError
from autoopt.plugins.interfaces import TrainTask, TrialRecord
from autoopt.registry import ModelRegistry
from autoopt.validation.cv import PurgedWalkForward

NAMES = tuple(f"f{i}" for i in range(5))


def _task(n: int = 1500, **kw) -> TrainTask:  # noqa: ANN003
    """Synthetic rows where f0 and f1 really predict the label."""
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


def test_model_round_trips_through_text_and_the_registry(tmp_path: Path) -> None:
    trainer = LightGBMTrainer()
    task = _task()
    model = trainer.fit(task.X, task.y, trainer.default_params(1500) | {"num_boost_round": 40},
                        NAMES, seed=1)
    files = model.to_files()
    assert list(files) == [MODEL_FILE] and files[MODEL_FILE].startswith(b"tree\n")
    registry = ModelRegistry(tmp_path)
    manifest = registry.save("SYN", files, model_type=trainer.model_type, created_at=1,
                             features=NAMES, data_range=(0, 1))
    _, loaded_files = registry.load("SYN", manifest.release_id)
    loaded = trainer.load(loaded_files)
    assert loaded.feature_names == NAMES
    assert np.array_equal(loaded.predict_proba(task.X), model.predict_proba(task.X))


def test_loading_garbage_text_is_refused() -> None:
    with pytest.raises(ArtifactError, match="not a LightGBM text model"):
        LightGBMTrainer().load({MODEL_FILE: b"this is not a model"})
    with pytest.raises(ArtifactError, match="model.txt"):
        LightGBMTrainer().load({"weights.bin": b""})


def test_tuning_is_deterministic_given_the_seed() -> None:
    a = search.tune(LightGBMTrainer(), _task())
    b = search.tune(LightGBMTrainer(), _task())
    assert a.params == b.params
    assert [t.value for t in a.trials] == [t.value for t in b.trials]
    c = search.tune(LightGBMTrainer(), _task(seed=4))
    assert [t.params for t in c.trials[1:]] != [t.params for t in a.trials[1:]]


def test_each_trial_is_reported_and_records_its_sharpe() -> None:
    seen: list[TrialRecord] = []
    result = search.tune(LightGBMTrainer(), _task(on_trial=seen.append))
    assert [r.number for r in seen] == [0, 1, 2]
    assert all(r.state == "COMPLETE" and r.value is not None for r in seen)
    assert len(result.trial_sharpes()) == 3
    # the signal is real: the best trial's CV log loss beats the coin flip's ln 2
    assert result.best_value < np.log(2) - 0.05
    assert result.params["num_boost_round"] == seen[result.best_trial].user_attrs["best_iteration"]


def test_study_resumes_from_sqlite(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first: list[TrialRecord] = []
    search.tune(LightGBMTrainer(),
                _task(storage=storage, study_name="SYN.lgbm.x", on_trial=first.append))
    again: list[TrialRecord] = []
    result = search.tune(LightGBMTrainer(),
        _task(storage=storage, study_name="SYN.lgbm.x", n_trials=5, on_trial=again.append))
    assert [r.number for r in first] == [0, 1, 2]
    assert [r.number for r in again] == [3, 4]  # only the trials missing from the budget ran
    assert result.n_trials == 5
    study = optuna.load_study(study_name="SYN.lgbm.x", storage=storage)
    assert len(study.trials) == 5


def test_pruning_stops_a_bad_trial_during_boosting(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    task = _task(storage=storage, study_name="prune", n_trials=5, pruning=True, pruner="median",
                 min_completed_trials=2)
    trainer = LightGBMTrainer(report_every=5)
    study = search.open_search_study(trainer, task)
    good = {"num_leaves": 15, "learning_rate": 0.2, "max_depth": 4, "min_data_in_leaf": 20,
            "feature_fraction": 1.0, "bagging_fraction": 1.0, "bagging_freq": 0,
            "lambda_l1": 1e-8, "lambda_l2": 1e-8}
    for lr in (0.2, 0.25, 0.3, 0.15):
        study.enqueue_trial(good | {"learning_rate": lr})
    # a learning rate 20x smaller barely moves the loss in the first iterations
    study.enqueue_trial(good | {"learning_rate": 0.01})
    seen: list[TrialRecord] = []
    search.tune(trainer, TrainTask(**{**task.__dict__, "on_trial": seen.append}))
    assert seen[-1].state == "PRUNED"  # the slow learner, at a report during boosting
    assert sum(r.state == "COMPLETE" for r in seen) >= 2  # the reserve for the gate
    bad = optuna.load_study(study_name="prune", storage=storage).trials[4]
    assert max(bad.intermediate_values) < 1000  # it stopped long before the round limit


def test_an_unknown_pruner_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown pruner 'bogus'"):
        make_pruner("bogus", enabled=True, report_every=10)


def test_released_models_predict_through_the_c_library_bit_identically() -> None:
    """A released model is loaded without the lightgbm package (ctypes over its C library):
    the same predictions, feature names and importances as `lightgbm.Booster`, to the bit."""
    import lightgbm as lgb
    import numpy as np

    from autoopt.builtins.lgbm_native import NativeBooster
    from autoopt.builtins.lgbm_trainer import LGBMPredictor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2_000, 6))
    y = (X[:, 0] + rng.normal(size=2_000) > 0).astype(int)
    names = [f"f{i}" for i in range(6)]
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 15, "seed": 1},
                        lgb.Dataset(X, y, feature_name=names), 50)
    text = booster.model_to_string()
    native = LGBMPredictor.from_text(text)
    assert isinstance(native.booster, NativeBooster)
    X_new = rng.normal(size=(500, 6))
    assert np.array_equal(native.predict_proba(X_new),
                          lgb.Booster(model_str=text).predict(X_new, num_threads=1))
    assert native.feature_names == tuple(names)
    for kind in ("gain", "split"):
        expected = lgb.Booster(model_str=text).feature_importance(importance_type=kind)
        assert native.importance(kind) == dict(zip(names, map(float, expected), strict=True))
    assert native.to_text() == text


def _lockstep_reference(task: TrainTask, params: dict, patience: int) -> tuple[list, int]:
    """The plain loop FoldSets.run must equal: every fold one iteration at a time, stop
    ``patience`` iterations after the best fold-mean loss."""
    import lightgbm as lgb

    from autoopt.builtins.lgbm_trainer import base_params

    binning = base_params(task.seed, 1)
    boosters = []
    for tr, te in task.folds:  # each fold binned on its own training rows
        tr, te = np.sort(tr), np.sort(te)
        train = lgb.Dataset(task.X[tr], label=task.y[tr].astype(float), params=binning)
        b = lgb.Booster(params=params, train_set=train.construct())
        b.add_valid(lgb.Dataset(task.X[te], label=task.y[te].astype(float), params=binning,
                                reference=train).construct(), "valid")
        boosters.append(b)
    curve, best, best_it = [], np.inf, 0
    for it in range(1, 400):
        for b in boosters:
            b.update()
        curve.append(float(np.mean([b.eval_valid()[0][2] for b in boosters])))
        if curve[-1] < best:
            best, best_it = curve[-1], it
        elif it - best_it >= patience:
            break
    return curve, best_it


@pytest.mark.parametrize("patience", [0, 7, 30])
def test_fold_threads_boost_exactly_the_lockstep_loop(patience: int) -> None:
    """Folds boosted in chunks by two worker threads give the very curve, stopping point and
    trees of the one-iteration-at-a-time loop (so ``threads`` never changes a result)."""
    from autoopt.builtins.lgbm_trainer import FoldSets, base_params

    task = _task()
    params = base_params(task.seed, 1) | {"learning_rate": 0.2, "num_leaves": 15,
                                           "bagging_fraction": 0.7, "bagging_freq": 1}
    want, want_best = _lockstep_reference(task, params, patience)
    for workers in (1, 2):
        folds = FoldSets(task, 1, workers=workers)
        try:
            curve, boosters, best = folds.run(params, max_rounds=399, patience=patience,
                                              report_every=10)
        finally:
            folds.close()
        assert curve == want and best == want_best
        assert [b.current_iteration() for b in boosters] == [len(want)] * len(task.folds)


def test_folds_are_spread_over_workers_by_their_rows() -> None:
    from autoopt.builtins.lgbm_trainer import balance

    sizes = [50, 60, 70, 80, 90]  # a walk-forward split's training sets
    groups = balance(sizes, 2)
    assert sorted(f for g in groups for f in g) == list(range(5))
    assert max(sum(sizes[f] for f in g) for g in groups) == 180  # the best split; greedy: 200
    many = balance(list(range(1, 21)), 3)
    assert sorted(f for g in many for f in g) == list(range(20)) and len(many) == 3
    assert balance(sizes, 1) == [[0, 1, 2, 3, 4]]


def test_patience_follows_the_learning_rate_between_its_floor_and_cap() -> None:
    from autoopt.builtins.lgbm_trainer import patience_for

    assert [patience_for(lr, cap=50, scale=1.0) for lr in (0.3, 0.1, 0.05, 0.03, 0.01)] == [
        10, 10, 20, 34, 50]
    assert patience_for(0.3, cap=50, scale=None) == 50  # unscaled: the fixed patience
    assert patience_for(0.3, cap=5, scale=1.0) == 5  # the floor never exceeds the cap


@pytest.mark.parametrize("lr", [0.3, 0.04])
def test_a_trial_stops_where_its_scaled_patience_says(lr: float) -> None:
    """The fast path stops a trial ``patience_for(its learning rate)`` rounds after its best:
    the stopping point of the plain lockstep loop run with that patience."""
    from autoopt.builtins.lgbm_trainer import base_params, patience_for

    task = _task()
    trainer = LightGBMTrainer(early_stopping_scale=1.0)
    params = {"learning_rate": lr, "num_leaves": 15, "bagging_fraction": 0.7, "bagging_freq": 1}
    patience = patience_for(lr, cap=trainer.early_stopping_rounds, scale=1.0)
    _, want_best = _lockstep_reference(task, base_params(task.seed, 1) | params, patience)
    fast = trainer.fold_search(task)
    try:
        fit = fast.run(params, None)
    finally:
        fast.close()
    assert fit.user_attrs["best_iteration"] == want_best


def test_the_halving_pruners_reduction_factor_is_the_trainers() -> None:
    assert LightGBMTrainer(reduction_factor=4).pruner_steps()["reduction_factor"] == 4
    with pytest.raises(ConfigError, match="reduction_factor must be >= 2"):
        make_pruner("successive_halving", enabled=True, report_every=10, reduction_factor=1)


def test_the_best_trials_fold_predictions_are_the_validations_refits() -> None:
    """Each fold is binned on its own training rows, so the best trial's fold boosters at
    their best iteration are the models the validator's refits grow: scoring the search's
    predictions gives the very figures refitting does (what lets the pipeline skip the
    refits)."""
    from autoopt.builtins.lgbm_trainer import LGBMPredictor
    from autoopt.pipeline.scoring import PurgedCVValidator

    trainer = LightGBMTrainer()
    task = _task(n_trials=4)
    tuned = search.tune(trainer, task)
    assert tuned.best_probas is not None and len(tuned.best_probas) == len(task.folds)

    def refit(X: np.ndarray, y: np.ndarray) -> LGBMPredictor:
        return trainer.fit(X, y, tuned.params, NAMES, seed=task.seed, threads=1)

    validator = PurgedCVValidator()
    refitted = validator.validate(task, refit)
    scored = validator.score(task, tuned.best_probas)
    assert scored.fold_metrics == refitted.fold_metrics
    np.testing.assert_array_equal(scored.returns, refitted.returns)
    assert scored.metrics == refitted.metrics
    # the probabilities themselves, fold by fold
    for proba, (train, test) in zip(tuned.best_probas, task.folds, strict=True):
        np.testing.assert_array_equal(proba, refit(task.X[train], task.y[train])
                                      .predict_proba(task.X[test]))


def test_a_search_without_refit_equal_folds_keeps_no_predictions() -> None:
    """The generic path (one ``fit`` per fold, e.g. a third-party trainer) does not claim its
    fold fits are the refits: the validator then refits."""
    class Plain(LightGBMTrainer):
        fold_search = None  # type: ignore[assignment]

        def final_params(self, params, user_attrs):  # noqa: ANN001, ANN202
            return dict(params) | {"num_boost_round": 30}

    tuned = search.tune(Plain(), _task(n_trials=2))
    assert tuned.best_probas is None
