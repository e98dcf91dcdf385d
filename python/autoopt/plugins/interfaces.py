"""Small interfaces that plugin components implement (structural: no base class needed).

Kept deliberately narrow, like Optuna's samplers and storages: autoopt's pipeline talks to
components only through these methods, so a third-party component is a drop-in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import polars as pl


@runtime_checkable
class DataSource(Protocol):
    """Loads OHLCV bars for symbols from the URI scheme it owns."""

    name: str
    scheme: str

    def load(
        self, uri: str, symbols: Sequence[str] | None = None
    ) -> dict[str, pl.DataFrame]:
        """Bars per symbol with columns ts (UTC ns), open, high, low, close, volume."""
        ...


@runtime_checkable
class FeatureSet(Protocol):
    """Turns a symbol's bars into a feature frame whose row t uses only data up to t."""

    name: str

    def compute(self, bars: pl.DataFrame) -> pl.DataFrame:
        """Feature columns aligned row-for-row with ``bars``."""
        ...


@runtime_checkable
class Trainer(Protocol):
    """Fits, tunes, saves and loads one model family."""

    name: str

    def tune(self, task: Any) -> Any:
        """Run a hyperparameter search for ``task``; return the trained result."""
        ...

    def load(self, files: Mapping[str, bytes], manifest: Any) -> Predictor:
        """Rebuild a predictor from artifact files already checksum-verified."""
        ...


@runtime_checkable
class Predictor(Protocol):
    """A loaded model: probability that the label is positive for each row."""

    def predict(self, features: pl.DataFrame) -> np.ndarray: ...


@runtime_checkable
class Validator(Protocol):
    """Scores predictions against outcomes and returns named metrics."""

    name: str

    def score(self, task: Any, predictions: Any) -> dict[str, float]: ...


@runtime_checkable
class RiskTuner(Protocol):
    """Chooses risk parameters (stops, sizing, drawdown limits, weights) from history."""

    name: str

    def tune(self, task: Any) -> dict[str, float]: ...


@runtime_checkable
class DriftDetectorFactory(Protocol):
    """Builds a streaming drift detector (``update(x) -> bool``, ``to_bytes()``)."""

    name: str

    def create(self, **params: Any) -> Any: ...
