"""A fitted TFT behind autoopt's `Predictor` interface, and its artifact format.

Artifact: ``model.safetensors`` (the network's weights under ``model.``, the feature scaler
under ``scaler.``, float64) and ``config.json`` (feature names, architecture, training recipe,
importances). Loading parses JSON and safetensors only and rebuilds the network from the
config: nothing is ever unpickled (no ``torch.load``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from autoopt.errors import ArtifactError, ConfigError
from autoopt.tft.model import TemporalFusionTransformer
from autoopt.tft.training import predict_proba, torch_settings
from autoopt.tft.windows import Scaler, check_matrix

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "autoopt-tft"
FORMAT_VERSION = 1
_ARCH = ("hidden_size", "attention_heads", "dropout", "input_size")
_CPU = torch.device("cpu")


class TFTPredictor:
    """P(label = 1) per row from a trained TFT; the window of row t ends at row t of ``X``.

    Rows of ``X`` before ``lookback - 1`` see zero padding in place of history, so a caller that
    wants a full window for its first row passes ``lookback - 1`` earlier rows too.
    """

    def __init__(
        self,
        model: TemporalFusionTransformer,
        scaler: Scaler,
        feature_names: tuple[str, ...],
        config: Mapping[str, Any],
    ) -> None:
        self.model = model.to(_CPU).eval()
        self.scaler = scaler
        self.feature_names = feature_names
        self.config = dict(config)

    @property
    def lookback(self) -> int:
        """Rows of history one prediction reads (the tuned ``input_size``)."""
        return int(self.model.input_size)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = check_matrix(X, len(self.feature_names), "TFT model")
        with torch_settings(1, _CPU):
            return predict_proba(self.model, self.scaler, X, _CPU)

    def importance(self, kind: str = "gain") -> dict[str, float]:
        """``gain``: mean variable-selection weight on the training rows; ``split``: share of
        window steps where the feature got the largest selection weight."""
        if kind not in ("gain", "split"):
            raise ConfigError(f"importance kind must be 'gain' or 'split', got {kind!r}")
        values = self.config["importance"][kind]
        return {n: float(values[n]) for n in self.feature_names}

    def to_files(self) -> dict[str, bytes]:
        tensors = {f"model.{k}": v.detach().to(_CPU).contiguous()
                   for k, v in self.model.state_dict().items()}
        tensors["scaler.mean"] = torch.from_numpy(np.ascontiguousarray(self.scaler.mean))
        tensors["scaler.scale"] = torch.from_numpy(np.ascontiguousarray(self.scaler.scale))
        # one metadata key: safetensors writes metadata from a hash map, so several keys would
        # come out in a different order per process and the artifact bytes (and SHA-256) with it
        weights = st_save(tensors, metadata={"format": f"{FORMAT}/{FORMAT_VERSION}"})
        config = json.dumps(self.config, sort_keys=True, indent=1, allow_nan=False)
        return {WEIGHTS_FILE: weights, CONFIG_FILE: config.encode("utf-8")}

    @classmethod
    def from_files(cls, files: Mapping[str, bytes]) -> TFTPredictor:
        missing = [f for f in (WEIGHTS_FILE, CONFIG_FILE) if f not in files]
        if missing:
            raise ArtifactError(f"TFT artifact lacks {missing}; files: {sorted(files)}")
        try:
            config = json.loads(files[CONFIG_FILE].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"TFT {CONFIG_FILE} is not valid JSON: {exc}") from exc
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ArtifactError(f"TFT {CONFIG_FILE} is not an {FORMAT!r} config")
        if config.get("format_version") != FORMAT_VERSION:
            raise ArtifactError(
                f"TFT artifact format version {config.get('format_version')!r} is not "
                f"{FORMAT_VERSION}"
            )
        try:
            names = tuple(str(n) for n in config["feature_names"])
            arch = config["architecture"]
            model = TemporalFusionTransformer(
                len(names), int(arch["hidden_size"]), int(arch["attention_heads"]),
                float(arch["dropout"]), int(arch["input_size"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"TFT {CONFIG_FILE} is incomplete or invalid: {exc!r}") from exc
        try:
            tensors = st_load(files[WEIGHTS_FILE])
        except (SafetensorError, ValueError) as exc:
            raise ArtifactError(f"TFT {WEIGHTS_FILE} is not a safetensors file: {exc}") from exc
        state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            model.load_state_dict(state, strict=True)
            mean = tensors["scaler.mean"].numpy()
            scale = tensors["scaler.scale"].numpy()
        except (RuntimeError, KeyError) as exc:
            raise ArtifactError(f"TFT weights do not match its config: {exc}") from exc
        if mean.shape != (len(names),) or scale.shape != (len(names),):
            raise ArtifactError(
                f"TFT scaler has shape {mean.shape}/{scale.shape} for {len(names)} features"
            )
        return cls(model, Scaler(mean=mean.astype(np.float64), scale=scale.astype(np.float64)),
                   names, config)


def artifact_config(
    feature_names: tuple[str, ...],
    hyper_params: Mapping[str, Any],
    training: Mapping[str, Any],
    gain: np.ndarray,
    split: np.ndarray,
) -> dict[str, Any]:
    """The ``config.json`` content of a freshly trained model."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "feature_names": list(feature_names),
        "architecture": {k: hyper_params[k] for k in _ARCH},
        "training": dict(training),
        "importance": {
            "gain": {n: float(v) for n, v in zip(feature_names, gain, strict=True)},
            "split": {n: float(v) for n, v in zip(feature_names, split, strict=True)},
        },
        "torch_version": torch.__version__,
    }


__all__ = ["CONFIG_FILE", "FORMAT", "TFTPredictor", "WEIGHTS_FILE", "artifact_config"]
