"""Trainer ``logreg``: L2-regularised logistic regression in numpy, JSON artifacts.

Written against autoopt's trainer SDK (`autoopt.plugins.interfaces.ModelTrainer`): it says what
to search (`search_space`), how to fit, predict, save and load. autoopt's core runs the search:
the Optuna study, the purged CV folds, the out-of-sample log loss and Sharpe ratios after
costs the gate deflates, pruning and the trial budget.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoopt.errors import ArtifactError


@dataclass(frozen=True)
class LogReg:
    w: np.ndarray
    b: float
    mean: np.ndarray
    sd: np.ndarray


class LogRegTrainer:
    name = "logreg"
    model_type = "example-logreg"

    def search_space(self, trial: Any, ctx: Any) -> dict[str, Any]:
        return {"l2": trial.suggest_float("l2", 1e-2, 1e2, log=True)}

    def default_params(self, n_train: int) -> dict[str, Any]:
        return {"l2": 1.0}

    def fit(self, X: np.ndarray, y: np.ndarray, params: Mapping[str, Any], *,
            feature_names: Sequence[str], seed: int = 42, threads: int = 1,
            valid: Any = None, report: Any = None) -> LogReg:
        X = np.asarray(X, dtype=np.float64)
        mean, sd = X.mean(axis=0), X.std(axis=0)
        sd[sd == 0] = 1.0
        A = np.column_stack(((X - mean) / sd, np.ones(len(X))))
        l2 = np.r_[np.full(X.shape[1], float(params["l2"])), 1e-9]
        beta = np.zeros(A.shape[1])
        for _ in range(50):  # Newton steps
            p = 1.0 / (1.0 + np.exp(-A @ beta))
            step = np.linalg.solve(A.T @ (A * (p * (1 - p))[:, None]) + np.diag(l2),
                                   A.T @ (p - y) + l2 * beta)
            beta -= step
            if np.max(np.abs(step)) < 1e-8:
                break
        return LogReg(beta[:-1], float(beta[-1]), mean, sd)

    def predict(self, model: LogReg, X: np.ndarray) -> np.ndarray:
        z = ((np.asarray(X, dtype=np.float64) - model.mean) / model.sd) @ model.w + model.b
        return 1.0 / (1.0 + np.exp(-z))

    def save(self, model: LogReg) -> dict[str, bytes]:
        doc = {"w": model.w.tolist(), "b": model.b, "mean": model.mean.tolist(),
               "sd": model.sd.tolist()}
        return {"logreg.json": json.dumps(doc, sort_keys=True).encode()}

    def load(self, files: Mapping[str, bytes]) -> LogReg:
        try:
            doc = json.loads(files["logreg.json"])
            return LogReg(np.asarray(doc["w"]), float(doc["b"]), np.asarray(doc["mean"]),
                          np.asarray(doc["sd"]))
        except (KeyError, ValueError) as exc:
            raise ArtifactError(f"not a logreg artifact: {exc}") from None

    def importance(self, model: LogReg, kind: str = "gain") -> list[float]:
        return [float(abs(w)) for w in model.w]
