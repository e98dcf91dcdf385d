"""A release's own features, rebuilt from raw bars, so an engine predicts without re-implementing
them.

Why: the features a model was trained on are part of the model. The manifest records the feature
set's name, version and parameters and the lookback (`autoopt.pipeline.recipe`); `ReleaseFeatures`
builds that feature set through the plugins, refuses a different version (its columns would mean
something else), and turns bars into the model's input columns, in the manifest's order.

``predict(bars)`` scores every bar (NaN in the feature set's warm-up rows, as the pipeline drops
them); ``predict_latest(window)`` scores the last bar of a trailing window of at least the
warm-up, reading only the last ``lookback`` bars of it (see `autoopt.pipeline.recipe` for why that
equals the full-history value).

Bars: a polars DataFrame, a `BarBatch`, or a mapping of arrays with ``ts``, ``open``, ``high``,
``low``, ``close``, ``volume`` (the bars as the pipeline saw them: validated, in time order).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from autoopt.errors import ArtifactError, DataError
from autoopt.events import BarBatch

if TYPE_CHECKING:
    import polars as pl

    from autoopt.plugins import Plugins
    from autoopt.registry import Manifest

Bars = Any
"""A polars DataFrame, a `BarBatch` or a mapping of equal-length arrays (see module doc)."""


def bars_frame(bars: Bars) -> pl.DataFrame:
    """The bars as a polars DataFrame (no copy of a DataFrame; a view of a BarBatch's columns)."""
    import polars as pl

    if isinstance(bars, pl.DataFrame):
        return bars
    if isinstance(bars, BarBatch):
        return bars.to_polars()
    if isinstance(bars, Mapping):
        return pl.DataFrame({k: np.asarray(v) for k, v in bars.items()})
    raise DataError(
        f"bars must be a polars DataFrame, a BarBatch or a mapping of arrays, got "
        f"{type(bars).__name__}"
    )


class ReleaseFeatures:
    """Bars → the model's input columns, as the release was trained (see module doc)."""

    def __init__(self, feature_set: Any, columns: list[str], lookback: int) -> None:
        self.feature_set = feature_set
        self.columns = list(columns)
        all_columns = list(feature_set.columns())
        missing = [c for c in self.columns if c not in all_columns]
        if missing:
            raise ArtifactError(
                f"feature set {feature_set.name!r} has no columns {missing} that the release uses"
            )
        self._index = [all_columns.index(c) for c in self.columns]
        self.warmup = int(feature_set.warmup())
        self.lookback = max(int(lookback), self.warmup + 1)
        self._numpy = getattr(feature_set, "compute_numpy", None)
        """The feature set's frame-free path (optional): ``compute_numpy(arrays, tail)`` →
        rows x columns; the live path uses it so one bar costs no polars frame."""

    @classmethod
    def of(cls, manifest: Manifest, plugins: Plugins) -> ReleaseFeatures | None:
        """The release's features, or None for a release that recorded no feature set (written
        before the manifest held it: the engine then passes feature rows itself)."""
        if not manifest.feature_set:
            return None
        fs = plugins.component("feature_set", manifest.feature_set)
        version = str(getattr(fs, "version", ""))
        if manifest.feature_set_version and version != manifest.feature_set_version:
            raise ArtifactError(
                f"{manifest.symbol}/{manifest.release_id}: trained on feature set "
                f"{manifest.feature_set!r} version {manifest.feature_set_version}, but version "
                f"{version} is installed: its columns may differ; install the recorded version"
            )
        params = dict(getattr(fs, "params", None) or {})
        if manifest.feature_params and params != manifest.feature_params:
            raise ArtifactError(
                f"{manifest.symbol}/{manifest.release_id}: feature set {manifest.feature_set!r} "
                f"params {params} differ from the recorded {manifest.feature_params}"
            )
        return cls(fs, list(manifest.features), manifest.lookback)

    def matrix(self, bars: Bars) -> np.ndarray:
        """Every bar's input row (n_bars x n_columns, float64); warm-up rows hold NaN."""
        frame = bars_frame(bars)
        feats = self.feature_set.compute(frame)
        X = feats.to_numpy()
        if X.dtype != np.float64:
            X = X.astype(np.float64)
        return np.ascontiguousarray(X[:, self._index])

    def latest(self, window: Bars) -> np.ndarray:
        """The last bar's input row (1 x n_columns) from a trailing window of bars."""
        if self._numpy is not None:
            arrays = _trailing_arrays(window, self.lookback)
            if arrays is not None:
                n = len(arrays["close"])
                if n <= self.warmup:
                    raise DataError(
                        f"predict_latest needs more than the feature set's warm-up of "
                        f"{self.warmup} bars (lookback {self.lookback}), got {n}")
                return self._numpy(arrays, 1)[:, self._index]
        frame = bars_frame(window)
        if frame.height <= self.warmup:
            raise DataError(
                f"predict_latest needs more than the feature set's warm-up of {self.warmup} bars "
                f"(lookback {self.lookback}), got {frame.height}"
            )
        if frame.height > self.lookback:
            frame = frame.tail(self.lookback)
        return self.matrix(frame)[-1:]


_PRICE_COLUMNS = ("open", "high", "low", "close", "volume")


def _trailing_arrays(bars: Bars, n: int) -> dict[str, np.ndarray] | None:
    """The last ``n`` bars' price columns as numpy arrays (views where the input allows), or
    None for input the frame path should handle (it names what is wrong)."""
    import polars as pl

    if isinstance(bars, pl.DataFrame):
        cols = bars.columns
        if not all(c in cols for c in _PRICE_COLUMNS):
            return None
        start = max(bars.height - n, 0)
        return {c: bars[c].slice(start).to_numpy() for c in _PRICE_COLUMNS}
    if isinstance(bars, BarBatch):
        return {c: np.frombuffer(getattr(bars, c), dtype="<f8")[-n:] for c in _PRICE_COLUMNS}
    if isinstance(bars, Mapping):
        if not all(c in bars for c in _PRICE_COLUMNS):
            return None
        arrays = {c: np.asarray(bars[c])[-n:] for c in _PRICE_COLUMNS}
        if len({len(a) for a in arrays.values()}) != 1:
            return None
        return arrays
    return None


__all__ = ["Bars", "ReleaseFeatures", "bars_frame"]
