"""The strategy-parameter gate: tuned parameters are released only if, out of sample, they beat
both the neutral parameters and the current ones, and survive the Deflated Sharpe test.

Why the model gate's own rules (`autoopt.validation.gate.evaluate_gate`), applied twice: a risk
search is one more look at the same history, so it must clear the same bar a model does — the
champion rule (mean Sharpe over the outer folds beats the other's on the same folds, by the
margin) once against `NEUTRAL` and once against the current parameters, the Deflated Sharpe of
the tuned out-of-sample path with N = every trial the run started (plus the symbol's earlier
ledger rows), or, with the trial ledger on, the effective N of the symbol's ledger clustered by
return series (`autoopt.validation.ledger`, the model gate's N), and the minimum trade count. A run whose front is empty (no feasible
trial) is refused too. Every rule is reported, pass or fail.
"""

from __future__ import annotations

from autoopt.strategy.tuning import NestedResult
from autoopt.validation.gate import GateConfig, GateReason, GateVerdict, evaluate_gate
from autoopt.validation.ledger import EffectiveTrials


def _folds(result: NestedResult, who: str) -> list[dict[str, float]]:
    return [{"sharpe": getattr(f, who).sharpe, "n_trades": float(getattr(f, who).n_trades)}
            for f in result.folds]


def judge(result: NestedResult, config: GateConfig | None = None,
          prior_trials: int = 0, ledger: EffectiveTrials | None = None) -> GateVerdict:
    """The verdict on ``result`` (see the module doc); ``prior_trials``: ledger rows already
    recorded for the symbol, added to N; ``ledger``: the effective trials over the symbol's
    ledger including this run's (then the DSR's N, as in the model gate)."""
    cfg = config or GateConfig()
    n = result.n_trials + max(prior_trials, 0)
    tuned = _folds(result, "tuned")
    ppy = result.periods_per_year
    vs_neutral = evaluate_gate(tuned, _folds(result, "neutral"), result.oos_tuned, n, config=cfg,
                               ledger=ledger, champion_returns=result.oos_neutral,
                               periods_per_year=ppy)
    vs_current = evaluate_gate(tuned, _folds(result, "current"), result.oos_tuned, n, config=cfg,
                               ledger=ledger, champion_returns=result.oos_current,
                               periods_per_year=ppy)
    reasons: list[GateReason] = []
    for label, verdict in (("neutral", vs_neutral), ("current", vs_current)):
        r = next(x for x in verdict.reasons if x.rule == "champion")
        code = {"beats_champion": f"beats_{label}", "below_champion_margin": f"below_{label}",
                "no_champion": f"beats_{label}"}[r.code]
        reasons.append(GateReason(f"vs_{label}", code, r.passed, f"vs {label} params: {r.message}"))
    reasons += [r for r in vs_neutral.reasons if r.rule != "champion"]
    if result.final.chosen is None:
        reasons.append(GateReason("front", "empty_front", False,
                                  "no feasible trial on all bars: nothing to release"))
    else:
        reasons.append(GateReason("front", "point_chosen", True,
                                  f"{len(result.final.front)} points on the front; {result.final.rule}"))
    stats = dict(vs_neutral.stats)
    stats["neutral_mean"] = vs_neutral.stats.get("champion_mean", float("nan"))
    stats["current_mean"] = vs_current.stats.get("champion_mean", float("nan"))
    stats.pop("champion_mean", None)
    stats.pop("improvement", None)
    return GateVerdict(all(r.passed for r in reasons), reasons, stats)


__all__ = ["judge"]
