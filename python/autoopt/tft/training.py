"""Training one TFT: hyperparameters, torch settings, the epoch loop, inference.

Reproducibility rules (why the code looks like this):

* Every network owns its random streams: weights are initialised right after seeding, a private
  ``torch.Generator`` shuffles the rows, and dropout draws from the global stream, which is
  swapped in and out around each epoch (`Network.epoch`). So several fold networks trained in
  lockstep during tuning are bit-for-bit the networks that `fit` trains alone on the same rows
  with the same seed, and the validator re-fitting a fold reproduces the trial's model.
* On CPU the thread count is pinned and ``torch.use_deterministic_algorithms(True)`` is on while
  training; both are restored afterwards (`torch_settings`). Batching is plain index slicing of
  a seeded permutation, no DataLoader workers.
* Inference always runs on CPU with one thread and a fixed batch size, so a model's predictions
  do not depend on the machine that trained it or on the caller's thread settings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy.special import expit
from torch.nn import functional as F

from autoopt.errors import ConfigError, DataError
from autoopt.tft.model import TemporalFusionTransformer
from autoopt.tft.windows import Scaler, Windows

PREDICT_BATCH = 2048
CLIP_GRAD_NORM = 1.0


@dataclass(frozen=True, kw_only=True)
class Hyper:
    """A TFT recipe: architecture plus the optimiser settings `fit` trains with."""

    hidden_size: int = 16
    attention_heads: int = 2
    dropout: float = 0.1
    learning_rate: float = 3e-3
    input_size: int = 16
    """Look-back window in rows (the window ends at the predicted row)."""
    epochs: int = 8
    batch_size: int = 256

    def __post_init__(self) -> None:
        checks = [
            ("hidden_size", self.hidden_size >= 1),
            ("attention_heads", self.attention_heads >= 1),
            ("dropout", 0.0 <= self.dropout < 1.0),
            ("learning_rate", self.learning_rate > 0.0),
            ("input_size", self.input_size >= 1),
            ("epochs", self.epochs >= 1),
            ("batch_size", self.batch_size >= 1),
        ]
        for name, ok in checks:
            if not ok:
                raise ConfigError(f"TFT parameter {name}={getattr(self, name)!r} is out of range")
        if self.hidden_size % self.attention_heads:
            raise ConfigError(
                f"TFT hidden_size {self.hidden_size} is not divisible by attention_heads "
                f"{self.attention_heads}"
            )

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Hyper:
        """From `TuneResult.params` / a manifest; unknown keys are an error, missing ones default."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigError(f"unknown TFT parameters {unknown}; known: {sorted(known)}")
        ints = {"hidden_size", "attention_heads", "input_size", "epochs", "batch_size"}
        values: dict[str, Any] = {}
        for k, v in params.items():
            try:
                values[k] = int(v) if k in ints else float(v)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"TFT parameter {k}={v!r} is not a number") from exc
            if k in ints and values[k] != v:
                raise ConfigError(f"TFT parameter {k}={v!r} must be an integer")
        return cls(**values)

    def as_params(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(device: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cpu``/``cuda``/``cuda:N`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"TFT device {device!r} is not a torch device") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"TFT device {device!r} requested but CUDA is not available")
    return dev


@contextmanager
def torch_settings(threads: int, device: torch.device) -> Iterator[None]:
    """Pin the CPU thread count and (on CPU) deterministic algorithms; restore both after."""
    if threads < 1:
        raise ConfigError(f"TFT threads must be >= 1, got {threads}")
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(int(threads))
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def check_labels(y: np.ndarray, n: int, who: str) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise DataError(f"{who}: y has shape {y.shape}, expected ({n},)")
    if not np.all(np.isin(y, (0, 1))):
        raise DataError(f"{who}: the TFT trainer needs 0/1 labels")
    if np.unique(y).size < 2:
        raise DataError(f"{who}: training labels hold one class only")
    return y


class Network:
    """One TFT under training on one array of rows, with its own random streams."""

    def __init__(
        self, X: np.ndarray, y: np.ndarray, hyper: Hyper, seed: int, device: torch.device
    ) -> None:
        self.hyper = hyper
        self.device = device
        self.scaler = Scaler.fit(X)
        self.windows = Windows(self.scaler.transform(X), hyper.input_size, device)
        self.y = torch.from_numpy(np.asarray(y, dtype=np.float32)).to(device)
        with torch.random.fork_rng(devices=_cuda_devices(device)):
            torch.manual_seed(seed)
            self.model = TemporalFusionTransformer(
                X.shape[1], hyper.hidden_size, hyper.attention_heads, hyper.dropout,
                hyper.input_size,
            ).to(device)
            self._rng_state = _get_rng(device)
        self.shuffle = torch.Generator().manual_seed(seed)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=hyper.learning_rate)
        self.epochs_done = 0

    def epoch(self) -> float:
        """Train one pass over the rows in seeded random batches; mean training loss."""
        model, hyper = self.model, self.hyper
        order = torch.randperm(self.windows.n, generator=self.shuffle).to(self.device)
        total = 0.0
        with torch.random.fork_rng(devices=_cuda_devices(self.device)):
            _set_rng(self.device, self._rng_state)
            model.train()
            for start in range(0, self.windows.n, hyper.batch_size):
                rows = order[start : start + hyper.batch_size]
                x, valid = self.windows.batch(rows)
                logits, _ = model(x, valid)
                loss = F.binary_cross_entropy_with_logits(logits, self.y[rows])
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_GRAD_NORM)
                self.optimizer.step()
                total += float(loss.detach()) * rows.numel()
            self._rng_state = _get_rng(self.device)
        self.epochs_done += 1
        return total / self.windows.n

    def predict(self, X: np.ndarray) -> np.ndarray:
        """P(y = 1) for the rows of ``X`` (windows within ``X``), float64.

        On CPU with one thread, like `TFTPredictor`, so a trial's fold scores are the scores
        the validator gets from the same recipe.
        """
        if self.device.type == "cpu":
            with torch_settings(1, self.device):
                return predict_proba(self.model, self.scaler, X, self.device)
        return predict_proba(self.model, self.scaler, X, self.device)


def predict_proba(
    model: TemporalFusionTransformer, scaler: Scaler, X: np.ndarray, device: torch.device
) -> np.ndarray:
    windows = Windows(scaler.transform(X), model.input_size, device)
    logits = np.empty(windows.n, dtype=np.float64)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, windows.n, PREDICT_BATCH):
                rows = torch.arange(start, min(start + PREDICT_BATCH, windows.n), device=device)
                out, _ = model(*windows.batch(rows))
                logits[start : start + rows.numel()] = out.double().cpu().numpy()
    finally:
        model.train(was_training)
    return np.asarray(expit(logits), dtype=np.float64)


def selection_importance(
    model: TemporalFusionTransformer, scaler: Scaler, X: np.ndarray, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Variable selection weights over ``X``'s valid window steps, per feature.

    Returns (mean weight share, share of steps where the feature had the largest weight); the
    window-position input is left out and the shares renormalised over the features.
    """
    windows = Windows(scaler.transform(X), model.input_size, device)
    n_feat = model.n_features
    weight_sum = torch.zeros(n_feat, dtype=torch.float64, device=device)
    top_count = torch.zeros(n_feat, dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, windows.n, PREDICT_BATCH):
                rows = torch.arange(start, min(start + PREDICT_BATCH, windows.n), device=device)
                x, valid = windows.batch(rows)
                _, weights = model.vsn(model.embed(x))
                w = weights[..., :n_feat][valid].double()  # (valid steps, features)
                weight_sum += w.sum(dim=0)
                top_count += torch.bincount(w.argmax(dim=1), minlength=n_feat).double()
    finally:
        model.train(was_training)
    gain = weight_sum.cpu().numpy()
    split = top_count.cpu().numpy()
    return gain / max(gain.sum(), 1e-300), split / max(split.sum(), 1.0)


def _cuda_devices(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def _get_rng(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng(device: torch.device, state: tuple[torch.Tensor, torch.Tensor | None]) -> None:
    torch.set_rng_state(state[0])
    if device.type == "cuda" and state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


__all__ = [
    "Hyper",
    "Network",
    "check_labels",
    "predict_proba",
    "resolve_device",
    "selection_importance",
    "torch_settings",
]
