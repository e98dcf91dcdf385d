"""The release gate: a challenger is released only if it passes every rule.

(a) **champion**: mean of `metric` over the CV folds beats the champion's mean on the *same* folds
    strictly, and by at least `margin` (absolute, in the metric's units; for lower-is-better
    metrics it must be lower by `margin`). No champion → passes with code ``no_champion``.
(b) **dsr**: the Deflated Sharpe Ratio of the challenger's out-of-sample per-period returns, with
    N = every trial the search started (pruned and failed ones included) and the luck
    benchmark's variance V = the Sharpe estimator's variance under the null for this return
    path (`autoopt.validation.dsr.null_sharpe_variance`: sample length and serial correlation;
    never the trials' own spread, which grows with a real edge), is >= `dsr_threshold`.
(c) **trades**: the challenger made at least `min_trades` trades over all folds.

Every rule is evaluated and reported (pass or fail) so a verdict event shows the full picture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import numpy as np

from autoopt.errors import ConfigError, ValidationRejected
from autoopt.validation.dsr import (
    expected_max_sharpe,
    null_sharpe_variance,
    probabilistic_sharpe_ratio,
    sharpe_moments,
)

LOWER_IS_BETTER = frozenset({"max_drawdown", "log_loss", "turnover"})

FoldMetrics = Sequence[Mapping[str, Any] | msgspec.Struct]


class GateConfig(msgspec.Struct, frozen=True, kw_only=True):
    margin: float = 0.0
    dsr_threshold: float = 0.95
    min_trades: int = 10
    metric: str = "sharpe"

    def __post_init__(self) -> None:
        if not 0.0 <= self.dsr_threshold <= 1.0:
            raise ConfigError(f"GateConfig.dsr_threshold must be in [0, 1], got {self.dsr_threshold}")
        if self.margin < 0:
            raise ConfigError(f"GateConfig.margin must be >= 0, got {self.margin}")
        if self.min_trades < 0:
            raise ConfigError(f"GateConfig.min_trades must be >= 0, got {self.min_trades}")


class GateReason(msgspec.Struct, frozen=True):
    """One rule's outcome: a stable machine-readable code plus a sentence for people."""

    rule: str
    code: str
    passed: bool
    message: str


class GateVerdict(msgspec.Struct, frozen=True):
    passed: bool
    reasons: list[GateReason]
    stats: dict[str, float]

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]

    @property
    def failures(self) -> list[GateReason]:
        return [r for r in self.reasons if not r.passed]

    def raise_if_refused(self) -> None:
        """Raise ValidationRejected carrying the failing codes when the gate refused."""
        if not self.passed:
            text = "; ".join(f"{r.code}: {r.message}" for r in self.failures)
            raise ValidationRejected(f"release gate refused: {text}", [r.code for r in self.failures])


def _values(folds: FoldMetrics, metric: str, who: str) -> np.ndarray:
    out = []
    for i, f in enumerate(folds):
        d = msgspec.structs.asdict(f) if isinstance(f, msgspec.Struct) else f
        if metric not in d:
            raise ConfigError(f"evaluate_gate: {who} fold {i} has no metric {metric!r}")
        out.append(float(d[metric]))
    return np.asarray(out, dtype=np.float64)


def _champion_rule(
    challenger: FoldMetrics, champion: FoldMetrics | None, cfg: GateConfig, st: dict[str, float]
) -> GateReason:
    ch = _values(challenger, cfg.metric, "challenger")
    if ch.size == 0:
        raise ConfigError("evaluate_gate: challenger_fold_metrics is empty")
    st["challenger_mean"] = float(ch.mean())
    if champion is None:
        return GateReason("champion", "no_champion", True, "no current champion to beat")
    cp = _values(champion, cfg.metric, "champion")
    if cp.size != ch.size:
        return GateReason("champion", "fold_mismatch", False,
                          f"champion has {cp.size} folds, challenger {ch.size}: not the same folds")
    st["champion_mean"] = float(cp.mean())
    lower = cfg.metric in LOWER_IS_BETTER
    diff = float(cp.mean() - ch.mean()) if lower else float(ch.mean() - cp.mean())
    st["improvement"] = diff
    # a hair of tolerance so an improvement of exactly `margin` is not lost to float rounding
    if diff > 0 and diff >= cfg.margin - 1e-9 * max(1.0, abs(cfg.margin)):
        return GateReason("champion", "beats_champion", True,
                          f"{cfg.metric} improves by {diff:.4g} >= margin {cfg.margin}")
    return GateReason("champion", "below_champion_margin", False,
                      f"{cfg.metric} improves by {diff:.4g}, needs > 0 and >= margin {cfg.margin}")


def _dsr_rule(
    returns: Sequence[float] | np.ndarray,
    n_trials: int,
    sr_variance: float | None,
    trial_counts: Mapping[str, int] | None,
    cfg: GateConfig,
    st: dict[str, float],
) -> GateReason:
    if n_trials < 1:
        raise ConfigError(f"evaluate_gate: n_trials must be >= 1, got {n_trials}")
    if sr_variance is None:
        sr_variance = null_sharpe_variance(returns)
        source = "null variance of the Sharpe estimator (1/(T-1) x Newey-West ratio)"
    else:
        source = "given"
    sr, n_obs, skew, kurt = sharpe_moments(returns)
    sr0 = expected_max_sharpe(n_trials, sr_variance)
    dsr = probabilistic_sharpe_ratio(sr, sr0, n_obs, skew, kurt)
    st.update(sr=sr, n_obs=float(n_obs), skew=skew, kurtosis=kurt, n_trials=float(n_trials),
              sr_variance=sr_variance, expected_max_sr=sr0, dsr=dsr,
              psr=probabilistic_sharpe_ratio(sr, 0.0, n_obs, skew, kurt))
    tried = f"{n_trials} trials started"
    if trial_counts:
        for key in ("completed", "pruned", "failed"):
            st[f"trials_{key}"] = float(trial_counts.get(key, 0))
        tried += (f" ({trial_counts.get('completed', 0)} completed, "
                  f"{trial_counts.get('pruned', 0)} pruned, {trial_counts.get('failed', 0)} failed)")
    luck = (f"per-period SR {sr:.4f} vs expected max of luck {sr0:.4f}; "
            f"V[SR] {sr_variance:.3g} over T={n_obs} from the {source}")
    if dsr >= cfg.dsr_threshold:
        return GateReason("dsr", "dsr_pass", True,
                          f"DSR {dsr:.3f} >= {cfg.dsr_threshold} over {tried} ({luck})")
    return GateReason("dsr", "dsr_below_threshold", False,
                      f"DSR {dsr:.3f} < {cfg.dsr_threshold} over {tried} ({luck})")


def evaluate_gate(
    challenger_fold_metrics: FoldMetrics,
    champion_fold_metrics: FoldMetrics | None,
    challenger_returns: Sequence[float] | np.ndarray,
    n_trials: int,
    sr_variance: float | None = None,
    config: GateConfig | None = None,
    trial_counts: Mapping[str, int] | None = None,
) -> GateVerdict:
    """Run rules (a)–(c) and return the verdict.

    `challenger_returns`: the challenger's out-of-sample per-period net returns (all test folds,
    concatenated). `n_trials`: every trial the search started. `sr_variance`: the per-period
    variance of the luck benchmark; None (the default and what the pipeline uses) computes the
    Sharpe estimator's null variance from `challenger_returns`. `trial_counts` (``completed``,
    ``pruned``, ``failed``) only enrich the verdict. Fold metrics need `config.metric` and
    ``n_trades`` (a `StrategyMetrics` or a mapping).
    """
    cfg = config or GateConfig()
    st: dict[str, float] = {}
    reasons = [_champion_rule(challenger_fold_metrics, champion_fold_metrics, cfg, st)]
    reasons.append(_dsr_rule(challenger_returns, n_trials, sr_variance, trial_counts, cfg, st))
    n_trades = int(_values(challenger_fold_metrics, "n_trades", "challenger").sum())
    st["n_trades"] = float(n_trades)
    if n_trades >= cfg.min_trades:
        reasons.append(GateReason("trades", "min_trades_met", True,
                                  f"{n_trades} trades >= {cfg.min_trades}"))
    else:
        reasons.append(GateReason("trades", "too_few_trades", False,
                                  f"{n_trades} trades < {cfg.min_trades}"))
    return GateVerdict(all(r.passed for r in reasons), reasons, st)


__all__ = ["GateConfig", "GateReason", "GateVerdict", "LOWER_IS_BETTER", "evaluate_gate"]
