"""The retrain summary: what `autoopt retrain --json` writes and `run_retrain` returns."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import msgspec


def iso(ns: int) -> str:
    """UTC ISO 8601 with microseconds, e.g. ``2024-05-01T03:00:00.123456+00:00``."""
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat()


def finite(metrics: dict[str, float]) -> dict[str, float | None]:
    """Metrics with NaN/±inf as None (JSON has no such numbers)."""
    return {k: (float(v) if math.isfinite(v) else None) for k, v in metrics.items()}


class ModelResult(msgspec.Struct, kw_only=True):
    """One (symbol, model) outcome."""

    symbol: str
    model: str
    score: float | None
    """The gate metric (fold mean, e.g. Sharpe after costs); None when the job failed."""
    metrics: dict[str, float | None]
    params: dict[str, Any]
    features: list[str]
    deployed: bool
    reasons: list[str]
    release_id: str | None = None
    champion: str | None = None
    n_trials: int = 0
    study: str = ""
    feature_importances: dict[str, float] = {}
    duration_s: float = 0.0
    error: str | None = None


class GlobalBest(msgspec.Struct, kw_only=True):
    symbol: str
    model: str
    score: float
    release_id: str | None
    deployed: bool


class RetrainSummary(msgspec.Struct, kw_only=True):
    run_id: str
    started_at: str
    finished_at: str
    source: str
    results: list[ModelResult]
    global_best: GlobalBest | None

    @property
    def failed(self) -> list[ModelResult]:
        return [r for r in self.results if r.error is not None]

    def to_json(self) -> bytes:
        return msgspec.json.format(msgspec.json.encode(self), indent=2)

    def write(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_json() + b"\n")


def global_best(results: list[ModelResult]) -> GlobalBest | None:
    """The result with the highest score (ties: first in run order)."""
    scored = [r for r in results if r.score is not None and math.isfinite(r.score)]
    if not scored:
        return None
    best = max(scored, key=lambda r: r.score)  # type: ignore[arg-type,return-value]
    assert best.score is not None
    return GlobalBest(
        symbol=best.symbol, model=best.model, score=best.score,
        release_id=best.release_id, deployed=best.deployed,
    )


__all__ = ["GlobalBest", "ModelResult", "RetrainSummary", "finite", "global_best", "iso"]
