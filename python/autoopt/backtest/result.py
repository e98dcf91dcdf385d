"""What a policy backtest produces: per policy and symbol, the out-of-sample path the champion of
each moment traded (after costs), the markers of what the core decided along it, and the figures
computed on those paths.

Why a struct of plain lists: `--json` writes it as is, the report module reads it, and the run
digest hashes its msgpack bytes, so one shape serves all three.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

MarkerKind = Literal["retrain", "release", "refusal", "failed", "params", "params_refusal",
                     "params_failed"]


class Marker(msgspec.Struct, frozen=True, kw_only=True):
    """Something the policy did at ``ts`` (Unix ns): a retrain decided (``retrain``), a release
    swapped in (``release``), a challenger refused by the gate (``refusal``) or a failed job;
    with risk re-tuning, strategy params swapped in (``params``), refused by the strategy gate
    (``params_refusal``, the failed rules as text) or a failed re-tune (``params_failed``)."""

    ts: int
    kind: MarkerKind
    text: str
    release_id: str | None = None
    decided_ts: int | None = None
    """For a release, refusal or failure: when the retrain that produced it was decided (the
    difference to ``ts`` is the training delay)."""


class SymbolPath(msgspec.Struct, kw_only=True):
    """One symbol under one policy: a row per traded bar (the bars after the warm-up).

    ``returns[i]``: net simple return of holding ``positions[i]`` from bar ``ts[i]`` to the next
    bar, after fees and slippage; ``model_age_s[i]``: seconds since the model trading bar i was
    released (NaN while no model trades); ``release_ids[i]``: that model ("" for none)."""

    symbol: str
    ts: list[int]
    returns: list[float]
    positions: list[float]
    model_age_s: list[float]
    release_ids: list[str]
    markers: list[Marker] = []
    periods_per_year: float = 252.0
    params_ids: list[str] = []
    """With risk re-tuning: the params trading bar i (the re-tune's key, "" for the initial
    params); empty for a policy that does not re-tune."""


class PolicyResult(msgspec.Struct, kw_only=True):
    """One policy: its settings, paths, and figures per symbol and ``"pooled"`` (see
    `autoopt.backtest.metrics.path_metrics` for the keys)."""

    policy: str
    settings: dict[str, Any]
    paths: dict[str, SymbolPath]
    metrics: dict[str, dict[str, float]] = {}
    retrains: int = 0
    releases: int = 0
    refusals: int = 0
    failures: int = 0
    compute_s: float = 0.0
    """Seconds of every retrain and re-tune it used (shared ones counted in full)."""
    mean_model_age_s: float = 0.0
    params_releases: int = 0
    """Strategy params re-tuned, gated and swapped in (``[risk] retune = "with_retrain"``)."""
    params_refusals: int = 0
    params_failures: int = 0
    risk_compute_s: float = 0.0
    """The re-tunes' share of ``compute_s``."""


class PairwiseTest(msgspec.Struct, frozen=True, kw_only=True):
    """``policy`` against ``baseline``, paired on the same bars (pooled path)."""

    policy: str
    baseline: str
    sharpe_diff: float
    """Annualised Sharpe of ``policy`` minus that of ``baseline``."""
    ci_low: float
    ci_high: float
    """Block-bootstrap confidence interval of ``sharpe_diff`` (level ``Comparison.level``)."""
    jkm_z: float
    jkm_p: float
    """Jobson-Korkie test with Memmel's correction: z and two-sided p."""
    p_adjusted: float
    """``jkm_p`` after Holm's step-down correction over every pairwise test of the run."""
    verdict: Literal["better", "worse", "indistinguishable"]


class Comparison(msgspec.Struct, frozen=True, kw_only=True):
    """Is any difference real? Pairwise tests, the deflated Sharpe of the best policy for having
    compared K, and the answer in words."""

    tests: list[PairwiseTest]
    level: float = 0.95
    k_policies: int = 0
    best_policy: str = ""
    best_deflated_sharpe: float = float("nan")
    summary: list[str] = []


class BacktestResult(msgspec.Struct, kw_only=True):
    """A whole run: what went in, what each policy earned, and the comparison."""

    run_digest: str
    source: str
    symbols: list[str]
    start_ns: int
    end_ns: int
    warmup: float
    seed: int
    trials: int
    train_delay: str
    policies: list[PolicyResult]
    comparison: Comparison | None = None
    cache_hits: int = 0
    cache_misses: int = 0
    wall_s: float = 0.0
    risk_cache_hits: int = 0
    risk_cache_misses: int = 0
    """The risk re-tunes' cache (shared between policies like the retrains)."""
    stages_computed: dict[str, int] = {}
    """Retrain stages computed by this run (``fit``, ``judge``, ``final``), not read from the
    cache (`autoopt.backtest.training.RetrainCache.computed`)."""
    stages_cpu_s: dict[str, float] = {}
    """Their CPU seconds, by stage, in the processes that ran them."""

    def policy(self, name: str) -> PolicyResult:
        for p in self.policies:
            if p.policy == name:
                return p
        raise KeyError(name)


__all__ = [
    "BacktestResult",
    "Comparison",
    "Marker",
    "MarkerKind",
    "PairwiseTest",
    "PolicyResult",
    "SymbolPath",
]
