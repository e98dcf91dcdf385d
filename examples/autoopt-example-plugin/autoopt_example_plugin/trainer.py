"""Trainer ``logreg``: L2-regularised logistic regression in numpy, JSON artifacts.

`tune` is a small grid over the L2 strength, each trial scored on the task's purged folds: its
objective is the out-of-sample log loss, and its per-period Sharpe after the task's costs is
recorded as ``sharpe_per_period`` (what the Deflated Sharpe gate deflates, with N = every trial
started), its out-of-sample returns in ``TuneResult.trial_returns`` (for PBO and the ledger).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from autoopt.errors import ArtifactError
from autoopt.plugins.interfaces import TrainTask, TrialRecord, TuneResult
from autoopt.validation.metrics import positions_from_proba, sharpe_ratio, strategy_returns

GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


class LogRegModel:
    def __init__(self, w: np.ndarray, b: float, mean: np.ndarray, sd: np.ndarray,
                 feature_names: Sequence[str]) -> None:
        self.w, self.b, self.mean, self.sd = w, b, mean, sd
        self.feature_names = tuple(feature_names)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = ((np.asarray(X, dtype=np.float64) - self.mean) / self.sd) @ self.w + self.b
        return 1.0 / (1.0 + np.exp(-z))

    def to_files(self) -> dict[str, bytes]:
        doc = {"w": self.w.tolist(), "b": self.b, "mean": self.mean.tolist(),
               "sd": self.sd.tolist(), "features": list(self.feature_names)}
        return {"logreg.json": json.dumps(doc, sort_keys=True).encode()}

    def importance(self, kind: str = "gain") -> dict[str, float]:
        del kind
        return {n: float(abs(w)) for n, w in zip(self.feature_names, self.w, strict=True)}


def _fit(X: np.ndarray, y: np.ndarray, l2: float, names: Sequence[str]) -> LogRegModel:
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    sd = X.std(axis=0)
    sd[sd == 0] = 1.0
    Z = (X - mean) / sd
    w = np.zeros(Z.shape[1])
    b = 0.0
    yf = np.asarray(y, dtype=np.float64)
    for _ in range(50):  # Newton steps
        p = 1.0 / (1.0 + np.exp(-(Z @ w + b)))
        g = p * (1 - p)
        A = np.column_stack((Z, np.ones(len(Z))))
        H = A.T @ (A * g[:, None]) + np.diag(np.r_[np.full(Z.shape[1], l2), 1e-9])
        grad = A.T @ (p - yf) + np.r_[l2 * w, 0.0]
        step = np.linalg.solve(H, grad)
        w, b = w - step[:-1], b - step[-1]
        if np.max(np.abs(step)) < 1e-8:
            break
    return LogRegModel(w, float(b), mean, sd, names)


class LogRegTrainer:
    name = "logreg"
    model_type = "example-logreg"

    def default_params(self, n_train: int) -> dict[str, Any]:
        del n_train
        return {"l2": 1.0}

    def fit(self, X: np.ndarray, y: np.ndarray, params: Mapping[str, Any],
            feature_names: Sequence[str], *, seed: int = 42, threads: int = 1) -> LogRegModel:
        del seed, threads
        return _fit(X, y, float(params.get("l2", 1.0)), feature_names)

    def load(self, files: Mapping[str, bytes]) -> LogRegModel:
        try:
            doc = json.loads(files["logreg.json"])
            return LogRegModel(np.asarray(doc["w"]), float(doc["b"]), np.asarray(doc["mean"]),
                               np.asarray(doc["sd"]), doc["features"])
        except (KeyError, ValueError) as exc:
            raise ArtifactError(f"not a logreg artifact: {exc}") from None

    def tune(self, task: TrainTask) -> TuneResult:
        trials: list[TrialRecord] = []
        returns: dict[int, np.ndarray] = {}
        best: tuple[float, int] | None = None
        for number, l2 in enumerate(GRID[: max(1, task.n_trials)]):
            t0 = time.perf_counter()
            losses, parts = [], []
            for train, test in task.folds:
                test = np.sort(test)
                model = _fit(task.X[train], task.y[train], l2, task.feature_names)
                p = np.clip(model.predict_proba(task.X[test]), 1e-12, 1 - 1e-12)
                yt = task.y[test]
                losses.append(float(-np.mean(yt * np.log(p) + (1 - yt) * np.log(1 - p))))
                parts.append(strategy_returns(positions_from_proba(p), task.forward_returns[test],
                                              task.costs.fee_bps, task.costs.slippage_bps))
            oos = np.concatenate(parts)
            value = float(np.mean(losses))
            rec = TrialRecord(number=number, state="COMPLETE", params={"l2": l2}, value=value,
                              duration_s=time.perf_counter() - t0,
                              user_attrs={"sharpe_per_period": sharpe_ratio(oos),
                                          "sharpe": sharpe_ratio(oos, task.periods_per_year)})
            trials.append(rec)
            returns[number] = oos.astype(np.float32)
            if task.on_trial is not None:
                task.on_trial(rec)
            if math.isfinite(value) and (best is None or value < best[0]):
                best = (value, number)
        assert best is not None
        return TuneResult(study_name=task.study_name or f"logreg-{task.symbol}",
                          params={"l2": GRID[best[1]]}, best_value=best[0], best_trial=best[1],
                          trials=tuple(trials), objective="log_loss", trial_returns=returns)
