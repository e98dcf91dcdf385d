"""Feature scaling and look-back windows: what the network sees for row t.

Row t's input is the ``input_size`` rows of the given array ending at t (never one after t).
Rows before the start of the array are zero padding and flagged invalid, so attention skips
them. Features are standardised with the training rows' mean and standard deviation (NaN-aware);
a NaN ("unknown") becomes 0, the training mean, and values are clipped to ``±CLIP`` so one wild
row cannot saturate the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from autoopt.errors import DataError

CLIP = 10.0


@dataclass(frozen=True)
class Scaler:
    """Per-feature standardisation fitted on training rows (float64, stored with the weights)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> Scaler:
        X = np.asarray(X, dtype=np.float64)
        seen = np.isfinite(X)
        count = np.maximum(seen.sum(axis=0), 1)
        mean = np.where(seen, X, 0.0).sum(axis=0) / count
        var = (np.where(seen, X - mean, 0.0) ** 2).sum(axis=0) / count
        std = np.sqrt(var)
        scale = np.where(std > 1e-12, std, 1.0)
        return cls(mean=mean, scale=scale)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardised float32 copy; NaN → 0, ±inf → ±CLIP."""
        z = (np.asarray(X, dtype=np.float64) - self.mean) / self.scale
        z = np.nan_to_num(z, nan=0.0, posinf=CLIP, neginf=-CLIP)
        return np.clip(z, -CLIP, CLIP).astype(np.float32)


def check_matrix(X: np.ndarray, n_features: int, who: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise DataError(f"{who} expects a 2-D array with {n_features} feature columns, "
                        f"got shape {X.shape}")
    return X


class Windows:
    """All look-back windows of one standardised array, gathered batch by batch.

    ``padded`` holds ``input_size - 1`` zero rows then the data, so the window of row i is
    ``padded[i : i + input_size]``; a window position is valid when it maps to a row >= 0.
    """

    def __init__(self, Z: np.ndarray, input_size: int, device: torch.device) -> None:
        if input_size < 1:
            raise DataError(f"look-back input_size must be >= 1, got {input_size}")
        n, f = Z.shape
        self.n = n
        self.input_size = input_size
        pad = np.zeros((input_size - 1, f), dtype=np.float32)
        self.padded = torch.from_numpy(np.concatenate([pad, Z])).to(device)
        self.offsets = torch.arange(input_size, device=device)
        self.back = torch.arange(input_size - 1, -1, -1, device=device)

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows ``(B, L, F)`` and validity ``(B, L)`` for row positions ``rows`` (int64)."""
        index = rows.unsqueeze(1) + self.offsets  # positions in `padded`
        valid = (rows.unsqueeze(1) - self.back) >= 0
        return self.padded[index], valid


__all__ = ["CLIP", "Scaler", "Windows", "check_matrix"]
