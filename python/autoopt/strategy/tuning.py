"""Joint multi-objective tuning of `StrategyParams`: Optuna NSGA-II in nested walk-forward.

Why this shape:
- **Two objectives, not one**: Sharpe (maximised) and maximum drawdown (minimised) after costs,
  so the search keeps the whole trade-off (the Pareto front) instead of hiding it in a weighted
  sum; a user's drawdown limit then picks one point by a stated rule.
- **Constraints**: mean turnover per bar <= ``turnover_cap`` and the largest exposure <=
  ``leverage_cap``; NSGA-II treats an infeasible trial as dominated by every feasible one.
- **Nested walk-forward**: the bars after a first ``min_train`` share are cut into
  ``outer_folds`` consecutive blocks. For each block, a study tunes on every bar before it
  (the inner window: these parameters have no fitted state, so the inner folds' concatenated
  path is the inner window traded as one path) and the point chosen there is then traded on
  the block, starting flat. The outer blocks' returns, concatenated, are the out-of-sample path
  the gate judges; neutral and current parameters are traded on the same blocks. The
  parameters released are chosen by one more study on all bars (the usual nested-CV recipe: the
  outer loop judges the procedure, the final fit uses all the data).
- **The choice rule** on a front (`choose`): among feasible, non-dominated trials whose drawdown
  is within ``drawdown_limit``, the highest Sharpe (ties: smaller drawdown, then the earlier
  trial); if none is within the limit, the smallest drawdown. Deterministic given the seed.

Probabilities are the model's out-of-sample probabilities (NaN where there is none); see
`autoopt.strategy.signals`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from autoopt.errors import DataError
from autoopt.strategy.params import NEUTRAL, StrategyParams
from autoopt.strategy.simulate import MarketInputs, SimResult, simulate
from autoopt.validation.ledger import signature
from autoopt.validation.metrics import max_drawdown, sharpe_ratio


@dataclass(frozen=True, kw_only=True)
class TuneSettings:
    """How one tuning run searches and judges (see the module doc)."""

    n_trials: int = 100
    outer_folds: int = 3
    min_train: float = 0.4
    turnover_cap: float = 0.5
    leverage_cap: float = 3.0
    drawdown_limit: float = 0.25
    cost_bps: float = 0.0
    seed: int = 42

    def __post_init__(self) -> None:
        if self.n_trials < 1:
            raise DataError(f"tune-risk: trials must be >= 1, got {self.n_trials}")
        if self.outer_folds < 1:
            raise DataError(f"tune-risk: outer_folds must be >= 1, got {self.outer_folds}")
        if not 0.1 <= self.min_train < 1.0:
            raise DataError(f"tune-risk: min_train must be in [0.1, 1), got {self.min_train}")
        for name in ("turnover_cap", "leverage_cap", "drawdown_limit"):
            if not getattr(self, name) > 0:
                raise DataError(f"tune-risk: {name} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class Score:
    """One parameter set traded on one window."""

    sharpe: float
    max_drawdown: float
    turnover: float
    max_exposure: float
    n_trades: int

    def feasible(self, s: TuneSettings) -> bool:
        return self.turnover <= s.turnover_cap and self.max_exposure <= s.leverage_cap


@dataclass(frozen=True)
class Trial:
    number: int
    params: StrategyParams
    score: Score
    feasible: bool
    days: tuple[list[int], list[float]] | None = None
    """Its returns summed per UTC day (the trial ledger's signature), when recorded."""


@dataclass(frozen=True)
class StudyResult:
    """One NSGA-II study: every trial, the feasible Pareto front, the chosen point."""

    trials: list[Trial]
    front: list[Trial]
    chosen: Trial | None
    rule: str


def score_of(sim: SimResult, periods_per_year: float) -> Score:
    r = sim.returns[1:]
    sharpe = sharpe_ratio(r, periods_per_year)
    return Score(
        sharpe=sharpe if math.isfinite(sharpe) else 0.0,
        max_drawdown=max_drawdown(r),
        turnover=float(sim.turnover[1:].mean()) if r.size else 0.0,
        max_exposure=float(np.abs(sim.exposure).max()),
        n_trades=entries(sim.exposure),
    )


def entries(exposure: np.ndarray) -> int:
    """Positions opened: bars whose side is non-zero and differs from the bar before (a resize
    by volatility targeting is not a new trade)."""
    side = np.sign(exposure)
    prev = np.concatenate(([0.0], side[:-1]))
    return int(np.count_nonzero((side != 0) & (side != prev)))


def evaluate(inputs: MarketInputs, prob: np.ndarray, params: StrategyParams, lo: int, hi: int,
             cost_bps: float) -> tuple[Score, SimResult]:
    """``params`` traded on bars [lo, hi), starting flat (indicators warm from before lo)."""
    inputs.atr(params.atr_period)  # on the whole history first: a window keeps its warm-up
    inputs.vol(params.vol_window)
    sim = simulate(inputs.slice(lo, hi), prob[lo:hi], params, cost_bps=cost_bps)
    return score_of(sim, inputs.periods_per_year), sim


def suggest(trial: object, s: TuneSettings) -> StrategyParams:
    """The search space: every rule can be (nearly) off; leverage up to the cap."""
    t = trial  # optuna.Trial (imported lazily)
    return StrategyParams(
        entry_threshold=t.suggest_float("entry_threshold", 0.5, 0.7),  # type: ignore[attr-defined]
        no_trade_band=t.suggest_float("no_trade_band", 0.0, 0.1),  # type: ignore[attr-defined]
        min_hold_bars=t.suggest_int("min_hold_bars", 0, 10),  # type: ignore[attr-defined]
        vol_target=t.suggest_categorical("vol_target", [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5]),  # type: ignore[attr-defined]
        kelly_cap=t.suggest_categorical("kelly_cap", [0.0, 0.1, 0.2, 0.4, 0.7, 1.0]),  # type: ignore[attr-defined]
        stop_loss_atr=t.suggest_categorical("stop_loss_atr", [0.0, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]),  # type: ignore[attr-defined]
        take_profit_atr=t.suggest_categorical("take_profit_atr", [0.0, 1.0, 2.0, 3.0, 5.0, 8.0]),  # type: ignore[attr-defined]
        trailing_stop_atr=t.suggest_categorical("trailing_stop_atr", [0.0, 1.5, 2.5, 4.0, 6.0]),  # type: ignore[attr-defined]
        max_leverage=t.suggest_float("max_leverage", 0.25, s.leverage_cap),  # type: ignore[attr-defined]
        max_drawdown=t.suggest_categorical("max_drawdown", [0.0, 0.05, 0.1, 0.2, 0.3]),  # type: ignore[attr-defined]
        halt_bars=t.suggest_int("halt_bars", 1, 50),  # type: ignore[attr-defined]
    )


def dominates(a: Score, b: Score) -> bool:
    """a is at least as good on both objectives and better on one."""
    return (a.sharpe >= b.sharpe and a.max_drawdown <= b.max_drawdown
            and (a.sharpe > b.sharpe or a.max_drawdown < b.max_drawdown))


def pareto_front(trials: list[Trial]) -> list[Trial]:
    """The feasible trials no other feasible trial dominates, by Sharpe descending."""
    feas = [t for t in trials if t.feasible]
    front = [t for t in feas if not any(dominates(o.score, t.score) for o in feas)]
    return sorted(front, key=lambda t: (-t.score.sharpe, t.score.max_drawdown, t.number))


def choose(front: list[Trial], drawdown_limit: float) -> tuple[Trial | None, str]:
    """The documented choice rule (module doc); returns the point and the rule as applied."""
    if not front:
        return None, "no feasible trial: nothing to choose"
    within = [t for t in front if t.score.max_drawdown <= drawdown_limit]
    if within:
        best = min(within, key=lambda t: (-t.score.sharpe, t.score.max_drawdown, t.number))
        return best, f"highest Sharpe on the front with max drawdown <= {drawdown_limit:g}"
    best = min(front, key=lambda t: (t.score.max_drawdown, -t.score.sharpe, t.number))
    return best, f"no front point within max drawdown {drawdown_limit:g}: the smallest drawdown"


def run_study(inputs: MarketInputs, prob: np.ndarray, lo: int, hi: int, s: TuneSettings,
              seed: int, on_trial: Callable[[Trial], None] | None = None) -> StudyResult:
    """One NSGA-II study over bars [lo, hi) (in memory: seeded, so reruns are identical)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out: list[Trial] = []

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        params = suggest(trial, s)
        score, sim = evaluate(inputs, prob, params, lo, hi, s.cost_bps)
        trial.set_user_attr("constraints", [score.turnover - s.turnover_cap,
                                            score.max_exposure - s.leverage_cap])
        sig = signature(inputs.ts[lo + 1:hi], sim.returns[1:])
        t = Trial(trial.number, params, score, score.feasible(s), (sig.days, sig.returns))
        out.append(t)
        if on_trial is not None:
            on_trial(t)
        return score.sharpe, score.max_drawdown

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # constraints_func: kept for optuna 3.6+
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.NSGAIISampler(
            seed=seed, constraints_func=lambda t: t.user_attrs.get("constraints", [0.0, 0.0]))
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        study.enqueue_trial(_as_trial_values(NEUTRAL))  # the neutral point is always on the table
        study.optimize(objective, n_trials=s.n_trials)
    front = pareto_front(out)
    chosen, rule = choose(front, s.drawdown_limit)
    return StudyResult(out, front, chosen, rule)


def _as_trial_values(p: StrategyParams) -> dict[str, float]:
    d = p.as_dict()
    return {k: (int(v) if k in ("min_hold_bars", "halt_bars") else v) for k, v in d.items()
            if k not in ("daily_loss_limit", "vol_window", "atr_period")} | {"halt_bars": 1}


@dataclass(frozen=True)
class OuterFold:
    lo: int
    hi: int
    study: StudyResult
    chosen: StrategyParams
    tuned: Score
    neutral: Score
    current: Score


@dataclass
class NestedResult:
    """Everything `autoopt.strategy.gate` judges and ``tune-risk`` reports for one symbol."""

    symbol: str
    folds: list[OuterFold]
    final: StudyResult
    oos_tuned: np.ndarray
    oos_neutral: np.ndarray
    oos_current: np.ndarray
    oos_ts: np.ndarray
    n_trials: int
    current: StrategyParams
    periods_per_year: float
    settings: TuneSettings = field(repr=False, default_factory=TuneSettings)

    @property
    def chosen(self) -> StrategyParams | None:
        return self.final.chosen.params if self.final.chosen is not None else None


def outer_blocks(n: int, s: TuneSettings) -> list[tuple[int, int]]:
    """The outer test blocks [lo, hi) (module doc); DataError when they would be too short."""
    first = int(n * s.min_train)
    size = (n - first) // s.outer_folds
    if first < 30 or size < 20:
        raise DataError(f"tune-risk: {n} bars with a signal are too few for {s.outer_folds} outer "
                        f"folds after {s.min_train:g} of training (>= 30 training and 20 test bars)")
    return [(first + k * size, n if k == s.outer_folds - 1 else first + (k + 1) * size)
            for k in range(s.outer_folds)]


def tune_nested(symbol: str, inputs: MarketInputs, prob: np.ndarray, *,
                current: StrategyParams = NEUTRAL, settings: TuneSettings | None = None,
                on_trial: Callable[[Trial], None] | None = None) -> NestedResult:
    """Nested walk-forward tuning of one symbol (module doc). ``prob`` aligned with ``inputs``."""
    s = settings or TuneSettings()
    p = np.asarray(prob, dtype=np.float64)
    if p.shape != (inputs.n,):
        raise DataError(f"tune-risk: {symbol}: probabilities have shape {p.shape}, bars {inputs.n}")
    folds: list[OuterFold] = []
    parts: dict[str, list[np.ndarray]] = {"tuned": [], "neutral": [], "current": []}
    ts_parts: list[np.ndarray] = []
    for k, (lo, hi) in enumerate(outer_blocks(inputs.n, s)):
        study = run_study(inputs, p, 0, lo, s, s.seed + 1000 * (k + 1), on_trial)
        chosen = study.chosen.params if study.chosen is not None else NEUTRAL
        scores = {}
        for name, params in (("tuned", chosen), ("neutral", NEUTRAL), ("current", current)):
            score, sim = evaluate(inputs, p, params, lo, hi, s.cost_bps)
            scores[name] = score
            parts[name].append(sim.returns[1:])
        ts_parts.append(inputs.ts[lo + 1:hi])
        folds.append(OuterFold(lo, hi, study, chosen, scores["tuned"], scores["neutral"],
                               scores["current"]))
    final = run_study(inputs, p, 0, inputs.n, s, s.seed, on_trial)
    return NestedResult(
        symbol=symbol, folds=folds, final=final,
        oos_tuned=np.concatenate(parts["tuned"]), oos_neutral=np.concatenate(parts["neutral"]),
        oos_current=np.concatenate(parts["current"]), oos_ts=np.concatenate(ts_parts),
        n_trials=s.n_trials * (len(folds) + 1), current=current,
        periods_per_year=inputs.periods_per_year, settings=s,
    )


__all__ = [
    "NestedResult", "OuterFold", "Score", "StudyResult", "Trial", "TuneSettings", "choose",
    "dominates", "entries", "evaluate", "outer_blocks", "pareto_front", "run_study", "score_of", "suggest",
    "tune_nested",
]
