"""TFT trainer: artifact round trip, causality, CPU determinism, pruning, and the gate vs LightGBM.

Everything is real (torch, Optuna with SQLite storage, LightGBM) and kept small: a few hundred
rows, hidden size 8, a handful of epochs.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from autoopt import search
from autoopt.builtins.lgbm import LightGBMTrainer
from autoopt.errors import ArtifactError, ConfigError, DataError
from autoopt.plugins.interfaces import (
    Predictor,
    Trainer,
    TrainTask,
    TrialRecord,
    lookback_of,
    predict_rows,
)
from autoopt.registry import ModelRegistry
from autoopt.tft.predictor import CONFIG_FILE, WEIGHTS_FILE
from autoopt.tft.trainer import SearchSpace, TFTTrainer
from autoopt.validation.cv import PurgedWalkForward
from autoopt.validation.gate import GateConfig, evaluate_gate
from autoopt.validation.metrics import (
    classification_metrics,
    log_loss,
    positions_from_proba,
    strategy_metrics,
)

HORIZON = 2
SMALL = SearchSpace(hidden_sizes=(8,), attention_heads=(1, 2), dropout=(0.0, 0.2),
                    learning_rate=(1e-3, 5e-2), input_sizes=(4, 8))
PARAMS = {"hidden_size": 8, "attention_heads": 2, "dropout": 0.1, "learning_rate": 0.01,
          "input_size": 6, "epochs": 2, "batch_size": 64}


def _market(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, direction labels over HORIZON rows, and next-row returns.

    Returns follow a persistent latent state three rows late; one feature is a noisy reading
    of that state, so both a row model and a window model can find an edge.
    """
    rng = np.random.default_rng(seed)
    state = np.zeros(n)
    for t in range(1, n):
        state[t] = 0.9 * state[t - 1] + rng.normal()
    r = 0.002 * rng.normal(size=n)
    r[3:] += 0.001 * np.sign(state[:-3])
    X = np.column_stack([state + rng.normal(size=n), r, np.roll(r, 1), rng.normal(size=(n, 2))])
    X[0, 2] = np.nan  # "unknown" must be handled
    fwd = np.append(r[1:], 0.0)
    c = np.cumsum(np.append(r, np.zeros(HORIZON)))
    y = (c[HORIZON : n + HORIZON] - c[:n] > 0).astype(np.int8)
    return X, y, fwd


def _task(n: int = 600, seed: int = 0, **kw: object) -> TrainTask:
    X, y, fwd = _market(n, seed)
    t1 = np.minimum(np.arange(n) + HORIZON, n - 1)
    folds = tuple(PurgedWalkForward(n_splits=2, embargo=HORIZON).split(n, t1))
    base = dict(symbol="SYN", X=X, y=y, feature_names=tuple(f"f{i}" for i in range(X.shape[1])),
                folds=folds, forward_returns=fwd, periods_per_year=252.0, n_trials=4,
                seed=7, threads=1)
    return TrainTask(**(base | kw))  # type: ignore[arg-type]


@pytest.fixture
def trainer() -> TFTTrainer:
    return TFTTrainer(search=SMALL, max_epochs=4, patience=2, batch_size=64, device="cpu")


def test_trainer_and_predictor_satisfy_the_protocols(trainer: TFTTrainer) -> None:
    task = _task(200)
    model = trainer.fit(task.X, task.y, PARAMS, task.feature_names)
    assert isinstance(trainer, Trainer) and trainer.model_type == "tft"
    assert isinstance(model, Predictor)
    assert model.lookback == PARAMS["input_size"]
    gain, split = model.importance("gain"), model.importance("split")
    assert set(gain) == set(split) == set(task.feature_names)
    assert sum(gain.values()) == pytest.approx(1.0) and sum(split.values()) == pytest.approx(1.0)


def test_fit_save_load_predicts_identically(trainer: TFTTrainer, tmp_path: Path) -> None:
    task = _task(300)
    model = trainer.fit(task.X, task.y, PARAMS, task.feature_names, seed=3)
    proba = model.predict_proba(task.X)
    assert proba.dtype == np.float64 and proba.shape == (300,)
    assert np.all((proba > 0) & (proba < 1)) and np.unique(proba).size > 10

    files = model.to_files()
    assert set(files) == {WEIGHTS_FILE, CONFIG_FILE}
    config = json.loads(files[CONFIG_FILE])
    assert config["architecture"]["input_size"] == PARAMS["input_size"]
    assert config["feature_names"] == list(task.feature_names)
    # checksummed like every artifact: through the registry and back from disk
    registry = ModelRegistry(tmp_path)
    manifest = registry.save("SYN", files, model_type=trainer.model_type, created_at=1,
                             params=PARAMS, features=task.feature_names, data_range=(0, 1))
    _, loaded_files = registry.load("SYN", manifest.release_id)
    loaded = trainer.load(loaded_files)

    assert np.array_equal(loaded.predict_proba(task.X), proba)
    assert loaded.importance() == model.importance()
    assert loaded.to_files() == files


def test_load_refuses_broken_artifacts(trainer: TFTTrainer) -> None:
    task = _task(200)
    files = trainer.fit(task.X, task.y, PARAMS, task.feature_names).to_files()
    with pytest.raises(ArtifactError, match="lacks"):
        trainer.load({CONFIG_FILE: files[CONFIG_FILE]})
    with pytest.raises(ArtifactError, match="safetensors"):
        trainer.load(files | {WEIGHTS_FILE: b"\x80\x04not safetensors"})
    config = json.loads(files[CONFIG_FILE])
    config["architecture"]["hidden_size"] = 16
    with pytest.raises(ArtifactError, match="do not match"):
        trainer.load(files | {CONFIG_FILE: json.dumps(config).encode()})


def test_prediction_at_row_t_uses_no_row_after_t(trainer: TFTTrainer) -> None:
    task = _task(200)
    model = trainer.fit(task.X, task.y, PARAMS, task.feature_names)
    full = model.predict_proba(task.X)
    changed = task.X.copy()
    changed[121:] += 5.0  # rewrite the future of row 120: rows up to 120 must not move
    moved = model.predict_proba(changed)
    assert np.array_equal(moved[:121], full[:121])
    assert not np.array_equal(moved[121:], full[121:])
    for t in (0, 3, 57, 120):  # cut the future off (float32 batch shapes differ: allclose)
        np.testing.assert_allclose(model.predict_proba(task.X[: t + 1]), full[: t + 1],
                                   rtol=1e-5, atol=1e-6)


def test_a_test_block_is_predicted_with_the_rows_before_it(trainer: TFTTrainer) -> None:
    """`predict_rows` (what the validator and the TFT's own tuning use) gives a block's first
    rows the history before the block: the same predictions as over the whole past, where the
    block alone would zero-pad the first lookback - 1 windows."""
    task = _task(300)
    model = trainer.fit(task.X, task.y, PARAMS, task.feature_names)
    k = model.lookback - 1
    assert lookback_of(model) == model.lookback == PARAMS["input_size"]
    rows = np.arange(200, 260)
    with_context = predict_rows(model.predict_proba, model.lookback, task.X, rows)
    past = model.predict_proba(task.X[:260])[200:]
    np.testing.assert_allclose(with_context, past, rtol=1e-5, atol=1e-6)
    alone = model.predict_proba(task.X[rows])
    np.testing.assert_allclose(alone[k:], past[k:], rtol=1e-5, atol=1e-6)
    assert not np.allclose(alone[:k], past[:k], rtol=1e-5, atol=1e-6)
    # a block at the very start, a scattered set of rows, and a model without history
    np.testing.assert_allclose(
        predict_rows(model.predict_proba, model.lookback, task.X, np.arange(0, 3)),
        model.predict_proba(task.X[:3]), rtol=1e-5, atol=1e-6)
    scattered = np.array([10, 50, 51])
    np.testing.assert_allclose(
        predict_rows(model.predict_proba, model.lookback, task.X, scattered),
        model.predict_proba(task.X[scattered]), rtol=1e-5, atol=1e-6)
    lgbm = LightGBMTrainer().fit(task.X, task.y, {"num_iterations": 5}, task.feature_names)
    assert lookback_of(lgbm) == 1
    assert np.array_equal(predict_rows(lgbm.predict_proba, 1, task.X, rows),
                          lgbm.predict_proba(task.X[rows]))


def test_fit_is_deterministic_on_cpu_given_the_seed(trainer: TFTTrainer) -> None:
    task = _task(300)
    a = trainer.fit(task.X, task.y, PARAMS, task.feature_names, seed=11).to_files()
    b = trainer.fit(task.X, task.y, PARAMS, task.feature_names, seed=11).to_files()
    c = trainer.fit(task.X, task.y, PARAMS, task.feature_names, seed=12).to_files()
    assert a[WEIGHTS_FILE] == b[WEIGHTS_FILE]
    assert a[WEIGHTS_FILE] != c[WEIGHTS_FILE]


def test_bad_input_is_named(trainer: TFTTrainer) -> None:
    task = _task(120)
    names = task.feature_names
    with pytest.raises(DataError, match="5 feature columns"):
        trainer.fit(task.X[:, :3], task.y, PARAMS, names)
    with pytest.raises(DataError, match="one class"):
        trainer.fit(task.X, np.zeros(120, dtype=np.int8), PARAMS, names)
    with pytest.raises(ConfigError, match="unknown TFT parameters"):
        trainer.fit(task.X, task.y, PARAMS | {"num_leaves": 31}, names)
    with pytest.raises(ConfigError, match="not divisible"):
        trainer.fit(task.X, task.y, PARAMS | {"attention_heads": 3}, names)
    with pytest.raises(ConfigError, match="not divisible"):
        SearchSpace(hidden_sizes=(6,), attention_heads=(4,))


def test_tune_prunes_on_validation_loss_and_resumes(trainer: TFTTrainer, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    seen: list[TrialRecord] = []
    task = _task(400, n_trials=9, storage=storage, study_name="tft-prune", on_trial=seen.append)
    result = trainer.tune(task)

    states = [t.state for t in result.trials]
    assert "PRUNED" in states, states
    assert [r.number for r in seen] == list(range(9))
    assert result.n_trials == 9 and result.objective == "log_loss"
    complete = [t for t in result.trials if t.state == "COMPLETE"]
    assert len(result.trial_sharpes()) == len(complete) >= 2
    assert set(result.params) == {"hidden_size", "attention_heads", "dropout", "learning_rate",
                                  "input_size", "epochs", "batch_size"}
    assert 1 <= result.params["epochs"] <= 4
    assert result.best_value == min(t.value for t in complete)  # type: ignore[type-var]

    unpruned = trainer.tune(replace(task, pruning=False, storage=None, study_name="",
                                    on_trial=None))
    assert "PRUNED" not in [t.state for t in unpruned.trials]

    again = trainer.tune(replace(task, on_trial=None))  # same study: budget already spent
    assert again.n_trials == 9 and again.best_trial == result.best_trial


def _fold_scores(
    task: TrainTask, trainer: Trainer, params: dict[str, object]
) -> tuple[list[dict[str, float]], np.ndarray, float]:
    """What the validator does: fit each fold's training rows, score its test rows after costs."""
    folds, returns, losses = [], [], []
    for train, test in task.folds:
        model = trainer.fit(task.X[train], task.y[train], params, task.feature_names,
                            seed=task.seed, threads=task.threads)
        proba = predict_rows(model.predict_proba, lookback_of(model), task.X, test)
        cm = classification_metrics(task.y[test], proba)
        sm = strategy_metrics(positions_from_proba(proba), task.forward_returns[test],
                              task.periods_per_year, task.costs.fee_bps, task.costs.slippage_bps)
        folds.append({"log_loss": cm.log_loss, "sharpe": sm.metrics.sharpe,
                      "n_trades": float(sm.metrics.n_trades)})
        returns.append(sm.returns)
        losses.append(log_loss(task.y[test], proba))
    return folds, np.concatenate(returns), float(np.mean(losses))


def test_gate_compares_tft_with_lightgbm_on_the_same_folds(trainer: TFTTrainer) -> None:
    task = _task(600, n_trials=3)
    lgbm = LightGBMTrainer(max_rounds=60, early_stopping_rounds=10)
    tuned = {"tft": trainer.tune(task), "lgbm": search.tune(lgbm, task)}
    scores = {
        "tft": _fold_scores(task, trainer, tuned["tft"].params),
        "lgbm": _fold_scores(task, lgbm, tuned["lgbm"].params),
    }
    # the validator re-fitting the tuned recipe reproduces the trial's fold models exactly
    assert scores["tft"][2] == pytest.approx(tuned["tft"].best_value, rel=1e-12)

    cfg = GateConfig(margin=0.0, dsr_threshold=0.0, min_trades=1, metric="sharpe")
    verdict = evaluate_gate(scores["tft"][0], scores["lgbm"][0], scores["tft"][1],
                            tuned["tft"].n_trials, config=cfg)
    reverse = evaluate_gate(scores["lgbm"][0], scores["tft"][0], scores["lgbm"][1],
                            tuned["lgbm"].n_trials, config=cfg)
    tft_mean = float(np.mean([f["sharpe"] for f in scores["tft"][0]]))
    lgbm_mean = float(np.mean([f["sharpe"] for f in scores["lgbm"][0]]))
    assert verdict.stats["challenger_mean"] == pytest.approx(tft_mean)
    assert verdict.stats["champion_mean"] == pytest.approx(lgbm_mean)
    assert "fold_mismatch" not in verdict.codes + reverse.codes
    assert len(scores["tft"][0]) == len(scores["lgbm"][0]) == len(task.folds)
    assert verdict.stats["n_obs"] == reverse.stats["n_obs"] == sum(len(te) for _, te in task.folds)
    winner = "tft" if tft_mean > lgbm_mean else "lgbm"
    assert ("beats_champion" in verdict.codes) == (winner == "tft")
    assert ("beats_champion" in reverse.codes) == (winner == "lgbm")
