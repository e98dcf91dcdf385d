"""Risk re-tuning inside the policy backtest: the service's ``[risk] retune = "with_retrain"`` on
the data available at a moment, content-addressed and shared between policies.

Why the real thing: the service re-tunes a symbol's strategy params after every retrain job it
completes (the model released or refused; `autoopt.strategy.service`), so a policy backtest
that claims to replay the service must run the same steps: the model recipe of that moment
refitted on the purged walk-forward folds for out-of-sample probabilities
(`autoopt.strategy.signals`), Optuna NSGA-II in nested walk-forward (`autoopt.strategy.tuning`)
and the gate against the neutral params and the params in force
(`autoopt.strategy.gate`). Only the bars with ``ts <=`` the retrain's cut are seen.

A re-tune's key is the digest of the symbol, the cut, the rows it may see, the model recipe
(its release id; none: the trainer's defaults), the strategy config (the pipeline section and
the policy's ``[risk]`` settings), the params in force and the seed: policies that reach the
same point with the same model and params compute it once; results are kept in memory and on
disk (``<cache dir>/risk/<key>.msgpack``) in the model retrains' `StageStore`. Requests and results cross
the process boundary (``jobs > 1``) as msgpack bytes; models as their native files.
"""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Callable
from typing import Any

import msgspec
import polars as pl

from autoopt.backtest.stages import StageStore
from autoopt.backtest.training import Recipe, SymbolBars, digest, plugins_of
from autoopt.config import Config, RiskConfig
from autoopt.errors import AutooptError, ConfigError
from autoopt.strategy.params import StrategyParams

_ENC = msgspec.msgpack.Encoder()


class RetuneOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """One re-tune: the gate's verdict, and the params to release when it passed."""

    key: str
    passed: bool
    reasons: list[str]
    """Every gate rule as ``code: message`` (failed ones first)."""
    params: dict[str, float] | None = None
    metrics: dict[str, float] = {}
    n_trials: int = 0
    recipe: str = ""
    """Where the model probabilities came from (``release <id>`` or ``default params``)."""
    error: str | None = None
    compute_s: float = 0.0


class _TuneRequest(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    symbol: str
    cut_ns: int
    bars: bytes
    config: dict[str, Any]
    champion: Recipe | None
    current: dict[str, float]


def effective_risk(config: Config, overrides: dict[str, Any]) -> RiskConfig:
    """The configured ``[risk]`` section with a policy's overrides (already validated when the
    policy was parsed)."""
    merged = msgspec.to_builtins(config.risk) | dict(overrides)
    try:
        return msgspec.convert(merged, RiskConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"policy [risk] settings: {exc}") from None


# ----------------------------------------------------------------------------- the worker

def _finite(values: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if math.isfinite(v)}


def _tune(req: _TuneRequest, config: Config) -> RetuneOutcome:
    from autoopt.pipeline.dataset import periods_per_year
    from autoopt.strategy.gate import judge
    from autoopt.strategy.run import gate_config_of, settings_of
    from autoopt.strategy.signals import oos_probabilities
    from autoopt.strategy.simulate import MarketInputs
    from autoopt.strategy.tuning import tune_nested
    from autoopt.validation.metrics import max_drawdown, sharpe_ratio

    t0 = time.perf_counter()
    frame = pl.read_ipc(io.BytesIO(req.bars)).filter(pl.col("ts") <= req.cut_ns)
    signal = oos_probabilities(config, plugins_of(config), req.symbol, frame, None,
                               recipe=req.champion)
    ts = signal.bars["ts"].to_numpy()
    inputs = MarketInputs.from_bars(signal.bars, periods_per_year=periods_per_year(ts))
    current = StrategyParams.from_dict(req.current)
    res = tune_nested(req.symbol, inputs, signal.prob, current=current,
                      settings=settings_of(config))
    verdict = judge(res, gate_config_of(config))
    ppy = res.periods_per_year
    metrics = _finite({
        "sharpe": sharpe_ratio(res.oos_tuned, ppy), "max_drawdown": max_drawdown(res.oos_tuned),
        "neutral_sharpe": sharpe_ratio(res.oos_neutral, ppy),
        "current_sharpe": sharpe_ratio(res.oos_current, ppy),
        "dsr": verdict.stats.get("dsr", math.nan)})
    ordered = sorted(verdict.reasons, key=lambda r: r.passed)
    passed = verdict.passed and res.chosen is not None
    return RetuneOutcome(
        key=req.key, passed=passed, reasons=[f"{r.code}: {r.message}" for r in ordered],
        params=res.chosen.as_dict() if passed and res.chosen is not None else None,
        metrics=metrics, n_trials=res.n_trials, recipe=signal.recipe,
        compute_s=time.perf_counter() - t0)


def run_tune(payload: bytes) -> bytes:
    """A worker's entry point: one re-tune, msgpack in and out; failures come back as data."""
    req = msgspec.msgpack.decode(payload, type=_TuneRequest)
    config = msgspec.convert(req.config, Config)
    t0 = time.perf_counter()
    try:
        result = _tune(req, config)
    except (AutooptError, ValueError, RuntimeError) as exc:
        msg = f"{type(exc).__name__}: {exc}"
        result = RetuneOutcome(key=req.key, passed=False, reasons=[f"failed: {msg}"],
                               error=msg, compute_s=time.perf_counter() - t0)
    return _ENC.encode(result)


# --------------------------------------------------------------------------- the scheduler


class RetuneCache:
    """Shares re-tunes between policies: one computation per content key (module doc), in
    flight or done, in memory and on disk; ``jobs`` > 1 runs them in worker processes."""

    def __init__(self, config: Config, bars: dict[str, pl.DataFrame] | SymbolBars, *,
                 cache_dir: str | os.PathLike[str], jobs: int = 1,
                 store: StageStore | None = None) -> None:
        """``bars``: the frames, or the model retrains' `SymbolBars` (`RetrainCache.bars`);
        ``store``: the model retrains' (`RetrainCache.store`), so re-tunes and retrains share
        one process pool and one limit of ``jobs`` stages at once; None: a store of its own."""
        self._config = config
        self._bars = bars if isinstance(bars, SymbolBars) else SymbolBars(bars)
        self._own_store = store is None
        self.store = StageStore(cache_dir, jobs=jobs) if store is None else store
        self.hits = 0
        self.misses = 0

    def key(self, symbol: str, cut_ns: int, champion: Recipe | None, current: StrategyParams,
            risk: RiskConfig) -> str:
        settings = {k: v for k, v in msgspec.to_builtins(risk).items() if k != "retune"}
        return digest("retune", symbol, cut_ns, self._bars.seen(symbol, cut_ns),
                      champion.release_id if champion is not None else None,
                      msgspec.to_builtins(self._config.pipeline), settings, current.as_dict(),
                      self._config.pipeline.seed)

    async def outcome(self, symbol: str, cut_ns: int, champion: Recipe | None,
                      current: StrategyParams, risk: RiskConfig) -> RetuneOutcome:
        """The re-tune of ``symbol`` at ``cut_ns`` with ``champion``'s probabilities, judged
        against ``current`` (the params in force), with the policy's ``risk`` settings."""
        key = self.key(symbol, cut_ns, champion, current, risk)
        config = msgspec.structs.replace(self._config, risk=risk)
        return await self._get(key, lambda: _TuneRequest(
            key=key, symbol=symbol, cut_ns=cut_ns, bars=self._bars.ipc[symbol],
            config=msgspec.to_builtins(config), champion=champion, current=current.as_dict()))

    async def _get(self, key: str, request: Callable[[], _TuneRequest]) -> RetuneOutcome:
        built: list[bool] = []

        def payload() -> bytes:
            built.append(True)
            return _ENC.encode(request())

        value = await self.store.get(key, RetuneOutcome, payload, run_tune, subdir="risk")
        if built:  # the payload was built: this call computed it
            self.misses += 1
        else:
            self.hits += 1
        return value

    def close(self) -> None:
        if self._own_store:
            self.store.close()


__all__ = ["RetuneCache", "RetuneOutcome", "effective_risk", "run_tune"]
