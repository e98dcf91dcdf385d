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
(d) **pbo** (when the study's trial returns are given): the Probability of Backtest Overfitting
    by CSCV (`autoopt.validation.pbo`) is at most `max_pbo`.
(e) **holdout** (when a holdout is configured): the chosen recipe, fitted on the development
    rows, earns a per-period Sharpe after costs above `holdout_min_sharpe` on the untouched
    holdout (`autoopt.validation.holdout`).

With a trial ledger (`autoopt.validation.ledger`) the DSR's N is the effective number of
independent trials over every configuration tried for the symbol; the verdict shows raw and
effective N and the variance of the trial clusters' Sharpe ratios next to the V it used.

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
from autoopt.validation.holdout import HoldoutFigures
from autoopt.validation.ledger import EffectiveTrials
from autoopt.validation.metrics import max_drawdown, sharpe_ratio, sortino_ratio
from autoopt.validation.pbo import PBOResult

LOWER_IS_BETTER = frozenset({"max_drawdown", "log_loss", "turnover"})

FoldMetrics = Sequence[Mapping[str, Any] | msgspec.Struct]


class GateConfig(msgspec.Struct, frozen=True, kw_only=True):
    margin: float = 0.0
    dsr_threshold: float = 0.95
    min_trades: int = 10
    metric: str = "sharpe"
    max_pbo: float = 0.5
    holdout_min_sharpe: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_pbo <= 1.0:
            raise ConfigError(f"GateConfig.max_pbo must be in [0, 1], got {self.max_pbo}")
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


def _path_figure(metric: str, returns: np.ndarray, periods_per_year: float) -> float | None:
    """``metric`` of a concatenated out-of-sample path, for the metrics a path defines."""
    if metric == "sharpe":
        return sharpe_ratio(returns, periods_per_year)
    if metric == "sortino":
        return sortino_ratio(returns, periods_per_year)
    if metric == "max_drawdown":
        return max_drawdown(returns)
    if metric == "total_return":
        return float(np.prod(1.0 + returns) - 1.0)
    return None


def _champion_rule(
    challenger: FoldMetrics, champion: FoldMetrics | None, cfg: GateConfig, st: dict[str, float],
    paths: tuple[np.ndarray, np.ndarray | None, float | None] | None = None,
) -> GateReason:
    """Challenger against champion on the same folds. A return or risk metric is compared on
    the two concatenated out-of-sample paths (after costs) when both are given: the mean of
    per-fold Sharpes is not the Sharpe of anything traded, and can even disagree in sign with
    it. Classification metrics (and callers without paths) compare fold means."""
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
    ch_fig, cp_fig, what = float(ch.mean()), float(cp.mean()), f"mean per-fold {cfg.metric}"
    if paths is not None:
        ch_r, cp_r, ppy = paths
        if cp_r is not None and ppy is not None and cp_r.size == ch_r.size and ch_r.size > 1:
            a = _path_figure(cfg.metric, ch_r, ppy)
            b = _path_figure(cfg.metric, cp_r, ppy)
            if a is not None and b is not None:
                ch_fig, cp_fig = a, b
                what = f"{cfg.metric} on the out-of-sample path"
                st["challenger_path"], st["champion_path"] = a, b
    lower = cfg.metric in LOWER_IS_BETTER
    diff = cp_fig - ch_fig if lower else ch_fig - cp_fig
    st["improvement"] = diff
    # a hair of tolerance so an improvement of exactly `margin` is not lost to float rounding
    if diff > 0 and diff >= cfg.margin - 1e-9 * max(1.0, abs(cfg.margin)):
        return GateReason("champion", "beats_champion", True,
                          f"{what} improves by {diff:.4g} >= margin {cfg.margin}")
    return GateReason("champion", "below_champion_margin", False,
                      f"{what} improves by {diff:.4g}, needs > 0 and >= margin {cfg.margin}")


def _dsr_rule(
    returns: Sequence[float] | np.ndarray,
    n_trials: float,
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
    started = trial_counts.get("started", n_trials) if trial_counts else n_trials
    tried = f"{started:g} trials started"
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


def _pbo_rule(pbo: PBOResult, cfg: GateConfig, st: dict[str, float]) -> GateReason:
    st.update(pbo=pbo.pbo, pbo_prob_loss=pbo.prob_loss, pbo_combinations=float(pbo.n_combinations),
              pbo_trials=float(pbo.n_trials))
    text = (f"PBO {pbo.pbo:.2f} over {pbo.n_trials} trials' returns in {pbo.n_combinations} "
            f"CSCV splits (the in-sample winner lost money out of sample in "
            f"{pbo.prob_loss:.0%})")
    if pbo.pbo <= cfg.max_pbo:
        return GateReason("pbo", "pbo_pass", True, f"{text} <= max {cfg.max_pbo}")
    return GateReason("pbo", "pbo_above_max", False, f"{text} > max {cfg.max_pbo}")


def _holdout_rule(h: HoldoutFigures, st: dict[str, float], cfg: GateConfig) -> GateReason:
    cv_sr = st.get("sr", float("nan"))
    st.update(holdout_sr=h.sharpe, holdout_sharpe=h.sharpe_annual, holdout_return=h.total_return,
              holdout_trades=float(h.n_trades), holdout_n_obs=float(h.n_obs), holdout_psr=h.psr)
    text = (f"holdout per-period SR {h.sharpe:.4f} (annual {h.sharpe_annual:.2f}, return "
            f"{h.total_return:+.2%}, {h.n_trades} trades, T={h.n_obs}) vs cross-validated "
            f"{cv_sr:.4f}")
    if h.sharpe > cfg.holdout_min_sharpe:
        return GateReason("holdout", "holdout_pass", True, f"{text} > {cfg.holdout_min_sharpe}")
    return GateReason("holdout", "holdout_failed", False, f"{text} <= {cfg.holdout_min_sharpe}")


def evaluate_gate(
    challenger_fold_metrics: FoldMetrics,
    champion_fold_metrics: FoldMetrics | None,
    challenger_returns: Sequence[float] | np.ndarray,
    n_trials: int,
    sr_variance: float | None = None,
    config: GateConfig | None = None,
    trial_counts: Mapping[str, int] | None = None,
    *,
    ledger: EffectiveTrials | None = None,
    pbo: PBOResult | None = None,
    holdout: HoldoutFigures | None = None,
    path_sharpes: Sequence[float] | None = None,
    champion_returns: Sequence[float] | np.ndarray | None = None,
    periods_per_year: float | None = None,
) -> GateVerdict:
    """Run rules (a)–(c) and return the verdict.

    `challenger_returns`: the challenger's out-of-sample per-period net returns (all test folds,
    concatenated). `n_trials`: every trial the search started. `sr_variance`: the per-period
    variance of the luck benchmark; None (the default and what the pipeline uses) computes the
    Sharpe estimator's null variance from `challenger_returns`. `trial_counts` (``completed``,
    ``pruned``, ``failed``) only enrich the verdict. Fold metrics need `config.metric` and
    ``n_trades`` (a `StrategyMetrics` or a mapping).

    ``ledger``: the effective number of trials over the symbol's ledger, used as the DSR's N
    instead of ``n_trials``. ``pbo`` and ``holdout`` add rules (d) and (e). ``path_sharpes``
    (CPCV: one per-period Sharpe per out-of-sample path; ``challenger_returns`` is then the
    median path) is reported, and its path count divides the trades summed over the splits.
    ``champion_returns`` (the champion's net returns on the same bars) and ``periods_per_year``:
    a return or risk ``config.metric`` is then compared on the two concatenated paths.
    """
    cfg = config or GateConfig()
    st: dict[str, float] = {}
    paths = (np.asarray(challenger_returns, dtype=np.float64),
             None if champion_returns is None else np.asarray(champion_returns, dtype=np.float64),
             periods_per_year)
    reasons = [_champion_rule(challenger_fold_metrics, champion_fold_metrics, cfg, st, paths)]
    n_dsr: float = n_trials
    if ledger is not None:
        n_dsr = ledger.n_effective
        st.update(n_trials_raw=float(ledger.n_raw), n_trials_effective=ledger.n_effective,
                  trial_clusters=float(ledger.n_clusters),
                  trials_with_series=float(ledger.n_with_series),
                  clusters_sr_variance=ledger.clusters_sr_variance)
    reasons.append(_dsr_rule(challenger_returns, n_dsr, sr_variance, trial_counts, cfg, st))
    if ledger is not None:
        r = reasons[-1]
        reasons[-1] = GateReason(r.rule, r.code, r.passed, (
            f"{r.message}; N = effective {ledger.n_effective:.1f} of {ledger.n_raw} ledger "
            f"entries for the symbol ({ledger.n_clusters} cluster(s) of {ledger.n_with_series} "
            f"return series; clusters' SR variance {ledger.clusters_sr_variance:.3g})"))
    n_paths = 1
    if path_sharpes:
        ps = np.asarray(path_sharpes, dtype=np.float64)
        n_paths = ps.size
        st.update(cpcv_paths=float(ps.size), path_sr_min=float(ps.min()),
                  path_sr_median=float(np.median(ps)), path_sr_max=float(ps.max()),
                  path_sr_std=float(ps.std(ddof=1)) if ps.size > 1 else 0.0,
                  path_sr_share_positive=float(np.mean(ps > 0)))
    n_trades = int(_values(challenger_fold_metrics, "n_trades", "challenger").sum()) // n_paths
    st["n_trades"] = float(n_trades)
    if n_trades >= cfg.min_trades:
        reasons.append(GateReason("trades", "min_trades_met", True,
                                  f"{n_trades} trades >= {cfg.min_trades}"))
    else:
        reasons.append(GateReason("trades", "too_few_trades", False,
                                  f"{n_trades} trades < {cfg.min_trades}"))
    if pbo is not None:
        reasons.append(_pbo_rule(pbo, cfg, st))
    if holdout is not None:
        reasons.append(_holdout_rule(holdout, st, cfg))
    return GateVerdict(all(r.passed for r in reasons), reasons, st)


__all__ = ["GateConfig", "GateReason", "GateVerdict", "LOWER_IS_BETTER", "evaluate_gate"]
