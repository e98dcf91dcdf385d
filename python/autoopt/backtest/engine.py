"""The policy backtest's simulation: history fed in order through the real decision core, one
run per (policy, symbol), on a simulated clock.

Time. Bars are stamped with their open (`BarBatch`). Step ``i`` happens at bar ``i``'s close,
``c_i = ts[i+1]`` (the last bar: ``ts[i]`` plus the median spacing): the features of row ``i``
are known, the champion of that moment predicts, and the strategy params in force turn its
probability into the position held to the next close, through the strategy simulator
(`autoopt.backtest.book`: thresholds, sizing, stops and halts, fees and slippage on every unit
of turnover). With neutral params that is ``close[i+1]/close[i] - 1`` times the sign of
``p - 0.5``, less costs on the change of position (`autoopt.validation.metrics.
strategy_returns`, the formula validation uses). Nothing at step ``i`` reads a bar after ``i``.

What the core sees, per step (only what the policy's triggers read, which changes no decision):
a `ClockTick` at ``c_i`` (schedules fire on time), the champion's `SignalEmitted` (its
probability as confidence: the prediction stream), the `TradeOutcome` of the position closed at
``c_i`` (the outcome stream), every ``report_every`` steps a `MetricsReported` with the live
accuracy, precision and Sharpe of those steps (the scale of the release metrics the
degradation baseline holds), and every ``drift.min_rows`` steps a live `FeatureBatch`.

Retrains. A `Retrain` command at step ``i`` trains on the bars with ``ts <= ts[i]`` (all closed
by ``c_i``) through `RetrainCache` (the real pipeline steps, shared between policies). The core
sees `TrainingStarted` at ``c_i`` and, at ``c_i + delay`` (``--train-delay``: a duration, or
``auto``: the measured compute seconds divided by the policy's ``hardware_speedup``),
`TrainingFinished`, and when the gate passed `ModelReleased`, the release's training reference
and `ModelPromoted`; the release trades from the first step at or after that instant. The
first model of every policy is the one trained on the warm-up (bars before the first traded
step), with no champion to beat.

Risk re-tuning (a policy's ``[risk] retune = "with_retrain"``, as the service): after every
retrain whose job completed (the model released or refused), the strategy params are re-tuned
on the same bars with the champion that retrain leaves (`autoopt.backtest.risk_retune`, shared
between policies), judged against neutral and the params in force, and a release trades from
the first step at or after ``c_i + delay`` (``auto``: the model's and the re-tune's compute
seconds over ``hardware_speedup``; a fixed delay: the model's instant), right after the model
swap of the same retrain. The warm-up model is re-tuned too; its params trade from the start.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import polars as pl

from autoopt.backtest.book import Book
from autoopt.backtest.policies import PolicySpec
from autoopt.backtest.result import Marker, PolicyResult, SymbolPath
from autoopt.backtest.risk_retune import RetuneCache, RetuneOutcome, effective_risk
from autoopt.backtest.training import Outcome, Recipe, RetrainCache
from autoopt.config import Config, RiskConfig
from autoopt.core import State, decide
from autoopt.core.commands import Retrain
from autoopt.errors import ConfigError, DataError
from autoopt.events import (
    ClockTick,
    Event,
    FeatureBatch,
    MetricsReported,
    ModelPromoted,
    ModelReleased,
    SignalEmitted,
    TradeOutcome,
    TrainingFinished,
    TrainingStarted,
)
from autoopt.ids import derived_event_id
from autoopt.strategy.params import NEUTRAL, StrategyParams
from autoopt.strategy.simulate import MarketInputs
from autoopt.validation.metrics import sharpe_ratio

NS = 1_000_000_000
ProgressFn = Callable[[str, str, int, int], None]


@dataclass(frozen=True)
class SymbolData:
    """One symbol's validated bars (OHLC for the strategy simulator) and the feature matrix of
    every bar (causal features)."""

    symbol: str
    ts: np.ndarray
    close: np.ndarray
    market: MarketInputs
    """The bars as the strategy simulator reads them (open, high, low, close, UTC day)."""
    close_ns: np.ndarray
    """``c_i``: when step i happens (bar i's close)."""
    fwd: np.ndarray
    X: np.ndarray
    feature_names: list[str]
    warm_rows: int
    start: int
    """First traded step."""
    periods_per_year: float


def prepare_symbol(symbol: str, bars: pl.DataFrame, feature_set: Any, warmup: float,
                   periods_per_year: float, trade_from_ns: int | None = None) -> SymbolData:
    """``trade_from_ns``: trading starts at the first bar at or after it (the bars before are
    history to train on) instead of after the ``warmup`` share."""
    ts = bars["ts"].to_numpy().astype(np.int64)
    close = bars["close"].to_numpy().astype(np.float64)
    step = int(np.median(np.diff(ts)))
    close_ns = np.concatenate((ts[1:], [ts[-1] + step]))
    fwd = np.full(ts.size, np.nan)
    fwd[:-1] = close[1:] / close[:-1] - 1.0
    feats = feature_set.compute(bars)
    X = np.ascontiguousarray(feats.cast(pl.Float64).to_numpy())
    first = int(math.ceil(ts.size * warmup)) if trade_from_ns is None else int(
        np.searchsorted(ts, trade_from_ns, side="left"))
    start = max(first, int(feature_set.warmup()) + 2)
    if start >= ts.size - 2:
        raise DataError(f"{symbol}: no bar left to trade after the warm-up "
                        f"({ts.size} bars, trading from bar {start})")
    market = MarketInputs.from_bars(bars, periods_per_year=periods_per_year)
    return SymbolData(symbol, ts, close, market, close_ns, fwd, X, list(feats.columns),
                      int(feature_set.warmup()), start, periods_per_year)


@dataclass
class _Pending:
    at_ns: int
    events: list[Event]
    outcome: Outcome | None
    decided_ns: int
    retune: RetuneOutcome | None = None
    """A re-tune's verdict (then ``outcome`` is None)."""


_DETECTORS: dict[tuple[int, int], tuple[Any, Any, Any]] = {}


def _stream_detectors(cache: RetrainCache, policy: Any) -> Any:
    """The policy's streaming drift detectors from this process's plugins (a plugin's detector
    too), resolved once per plugin set and policy (`autoopt.core.detectors.from_plugins`), as
    the service resolves them at start."""
    from autoopt.core.detectors import from_plugins

    plugins = cache.plugins()
    key = (id(plugins), id(policy))
    hit = _DETECTORS.get(key)
    if hit is None or hit[0] is not plugins or hit[1] is not policy:
        if len(_DETECTORS) >= 64:
            _DETECTORS.pop(next(iter(_DETECTORS)))
        hit = _DETECTORS[key] = (plugins, policy, from_plugins(plugins, policy))
    return hit[2]


@dataclass
class _Sim:
    spec: PolicySpec
    data: SymbolData
    config: Config
    cache: RetrainCache
    train_delay_s: float | None
    progress: ProgressFn | None
    retunes: RetuneCache | None = None
    state: State = field(default_factory=State)
    champion: Recipe | None = None
    champion_since: int = 0
    proba: np.ndarray | None = None
    book: Book | None = None
    """What is traded: the champions' probabilities through the params in force."""
    risk: RiskConfig | None = None
    """The policy's ``[risk]`` settings (the configured section with its overrides)."""
    pending: list[_Pending] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    retrains: int = 0
    releases: int = 0
    refusals: int = 0
    failures: int = 0
    compute_s: float = 0.0
    params_releases: int = 0
    params_refusals: int = 0
    params_failures: int = 0
    risk_compute_s: float = 0.0
    params_id: str = ""
    """The re-tune whose params trade now ("" for the initial params)."""
    decisions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        costs = self.config.pipeline.costs
        self.book = Book(self.data.market, self.data.start, self.spec.initial_params(),
                         costs.fees_bps + costs.slippage_bps)
        self.risk = effective_risk(self.config, self.spec.risk)
        if self.retuning and self.retunes is None:
            raise ConfigError(f"policy {self.spec.name!r} re-tunes risk: the backtest needs a "
                              "RetuneCache")

    @property
    def retuning(self) -> bool:
        return self.spec.risk_retune == "with_retrain"

    # --------------------------------------------------------------- the core's inputs

    def _scope(self) -> str:
        return f"backtest/{self.spec.name}/{self.data.symbol}"

    def _feed(self, event: Event, now: int) -> list[Retrain]:
        self.state, commands = decide(self.state, event, now, self.spec.policy,
                                      detectors=_stream_detectors(self.cache, self.spec.policy))
        out = []
        for c in commands:
            if c.actionable:
                self.decisions.append(f"{now}:{c.kind}:{c.reason}")
            if isinstance(c, Retrain):
                out.append(c)
        return out

    def _lifecycle(self, outcome: Outcome, decided: int, run_id: str) -> list[Event]:
        sym = self.data.symbol
        done = decided
        delay = self.train_delay_s
        if delay is None:  # auto: the measured compute on the policy's hardware
            delay = outcome.compute_s / max(self.spec.hardware_speedup, 1e-9)
        at = done + max(1, int(delay * NS))
        evs: list[Event] = [TrainingFinished(
            event_id=derived_event_id(run_id, "finished"), ts_event=at, ts_init=at, symbol=sym,
            run_id=run_id, trainer=self.config.pipeline.models[0],
            succeeded=outcome.error is None, metrics={
                k: v for k, v in outcome.metrics.items() if math.isfinite(v)},
            error=outcome.error)]
        rel = outcome.release
        if rel is not None:
            evs.append(ModelReleased(
                event_id=derived_event_id(run_id, "released"), ts_event=at, ts_init=at,
                symbol=sym, release_id=rel.release_id, model_type=rel.model_type,
                sha256=rel.sha256, uri=f"backtest:{rel.release_id}",
                metrics={k: v for k, v in rel.metrics.items() if math.isfinite(v)},
                features=list(rel.features), trainer=rel.trainer))
            d = self.data
            end = int(np.searchsorted(d.ts, rel.data_end, side="right"))
            lo = max(d.warm_rows, end - self.spec.policy.drift.reference_max_rows)
            if end - lo >= 2:
                evs.append(FeatureBatch(
                    event_id=derived_event_id(run_id, "reference"), ts_event=at, ts_init=at,
                    symbol=sym, feature_set=self.config.pipeline.feature_set,
                    columns=list(d.feature_names),
                    ts=np.ascontiguousarray(d.ts[lo:end], dtype="<i8").tobytes(),
                    values=np.ascontiguousarray(d.X[lo:end].T, dtype="<f8").tobytes(),
                    release_id=rel.release_id))
            evs.append(ModelPromoted(
                event_id=derived_event_id(run_id, "promoted"), ts_event=at, ts_init=at,
                symbol=sym, release_id=rel.release_id, previous_release_id=(
                    self.champion.release_id if self.champion else None)))
        return evs

    # ------------------------------------------------------------------- the models

    def _swap(self, rel: Recipe, step: int, at: int) -> None:
        from autoopt.plugins.interfaces import predict_rows

        trainer = self.cache.plugins().release_trainer(rel.trainer, rel.model_type)
        model = trainer.load(rel.files)
        d = self.data
        cols = [d.feature_names.index(f) for f in rel.features]
        rows = np.arange(step, d.ts.size)
        proba = np.full(d.ts.size, np.nan)
        X = d.X[:, cols]
        proba[step:] = predict_rows(model.predict_proba, int(getattr(model, "lookback", 1)),
                                    X, rows)
        self.proba = proba
        assert self.book is not None
        self.book.set_model(step, proba[step:])
        self.champion = rel
        self.champion_since = at

    def _step(self, i: int) -> tuple[float, float]:
        """The position held from bar ``i``'s close and its net return after costs (the
        strategy simulator's, `autoopt.backtest.book`)."""
        assert self.book is not None
        return float(self.book.pos[i]), float(self.book.ret[i])

    # ------------------------------------------------------------------- the run

    async def run(self, first: Outcome) -> SymbolPath:
        d = self.data
        cfg = self.spec.policy
        n = d.ts.size
        steps = range(d.start, n - 1)
        ppy = d.periods_per_year
        watch_signals = cfg.drift.enabled and bool(cfg.drift.streams)
        watch_features = cfg.drift.enabled and any(x in cfg.drift.detectors for x in ("psi", "ks"))
        report_every = max(1, int(round(ppy / 252.0)))  # about one report per trading day
        min_rows = cfg.drift.min_rows
        first_close = int(d.close_ns[d.start])
        self._apply_first(first, first_close)
        if self.retuning and first.error is None:  # the warm-up model's params, from the start
            tuned = await self._retune(first, d.start - 1)
            self._settle(_Pending(first_close - 1, [], None, first_close - 1, tuned), d.start)

        out_ts: list[int] = []
        rets: list[float] = []
        poss: list[float] = []
        ages: list[float] = []
        rids: list[str] = []
        pids: list[str] = []
        prev_pos = 0.0
        since_report: list[int] = []
        for k, i in enumerate(steps):
            now = int(d.close_ns[i])
            # releases whose time came: they trade from this step on
            commands: list[Retrain] = []
            while self.pending and self.pending[0].at_ns <= now:
                p = self.pending.pop(0)
                for ev in p.events:
                    commands += self._feed(ev, ev.ts_event)
                self._settle(p, i)
            commands += self._feed(_tick(now), now)
            pos, r = self._step(i)
            if self.proba is not None and watch_signals and math.isfinite(self.proba[i]):
                commands += self._feed(SignalEmitted(
                    event_id=derived_event_id(self._scope(), f"signal/{i}"), ts_event=now,
                    ts_init=now, symbol=d.symbol, signal_id=f"s{i}",
                    side="long" if pos > 0 else "short" if pos < 0 else "flat",
                    confidence=float(self.proba[i]),
                    release_id=self.champion.release_id if self.champion else None), now)
            if watch_signals and k > 0 and prev_pos != 0.0:
                j = i - 1
                commands += self._feed(TradeOutcome(
                    event_id=derived_event_id(self._scope(), f"outcome/{j}"), ts_event=now,
                    ts_init=now, symbol=d.symbol, trade_id=f"t{j}",
                    side="long" if prev_pos > 0 else "short", qty=1.0,
                    entry_price=float(d.close[j]), exit_price=float(d.close[i]),
                    fees=0.0, pnl=float(rets[-1]), return_=float(rets[-1]),
                    exit_ts=now), now)
            out_ts.append(now)
            rets.append(r)
            poss.append(pos)
            ages.append((now - self.champion_since) / NS if self.champion else math.nan)
            rids.append(self.champion.release_id if self.champion else "")
            if self.retuning:
                pids.append(self.params_id)
            since_report.append(i)
            if cfg.degradation.enabled and len(since_report) >= report_every:
                commands += self._report(since_report, rets[-len(since_report):], now, ppy)
                since_report = []
            elif not cfg.degradation.enabled:
                since_report = []
            if watch_features and self.champion is not None and (k + 1) % min_rows == 0:
                lo = i + 1 - min_rows
                commands += self._feed(FeatureBatch(
                    event_id=derived_event_id(self._scope(), f"features/{i}"), ts_event=now,
                    ts_init=now, symbol=d.symbol, feature_set=self.config.pipeline.feature_set,
                    columns=list(d.feature_names),
                    ts=np.ascontiguousarray(d.ts[lo:i + 1], dtype="<i8").tobytes(),
                    values=np.ascontiguousarray(d.X[lo:i + 1].T, dtype="<f8").tobytes()), now)
            self._react(commands, i)
            for c in commands:
                await self._retrain(c, i, now)
            prev_pos = pos
            if self.progress is not None and (k % 256 == 0 or i == n - 2):
                self.progress(self.spec.name, d.symbol, k + 1, len(steps))
            if k % 512 == 0:
                await asyncio.sleep(0)  # let the other simulations and retrains move
        return SymbolPath(symbol=d.symbol, ts=out_ts, returns=rets, positions=poss,
                          model_age_s=ages, release_ids=rids, markers=self.markers,
                          periods_per_year=ppy, params_ids=pids)

    def run_scripted(self, first: Recipe | None, swaps: Sequence[tuple[int, Recipe | None]],
                     markers: Sequence[Marker]) -> SymbolPath:
        """Trade a recorded timeline (``--from-log``'s ``actual``): ``first`` from the first
        step, each swap from the first step at or after its instant; no decision is made."""
        d = self.data
        queue = sorted(swaps, key=lambda x: x[0])
        if first is not None:
            self._swap(first, d.start, int(d.close_ns[d.start]) - 1)
        out = SymbolPath(symbol=d.symbol, ts=[], returns=[], positions=[], model_age_s=[],
                         release_ids=[], markers=list(markers),
                         periods_per_year=d.periods_per_year)
        for i in range(d.start, d.ts.size - 1):
            now = int(d.close_ns[i])
            while queue and queue[0][0] <= now:
                at, rel = queue.pop(0)
                if rel is None:
                    self.proba, self.champion = None, None
                    assert self.book is not None
                    self.book.set_model(i, None)
                else:
                    self._swap(rel, i, at)
                    self.releases += 1
            pos, r = self._step(i)
            out.ts.append(now)
            out.returns.append(r)
            out.positions.append(pos)
            out.model_age_s.append((now - self.champion_since) / NS if self.champion
                                   else math.nan)
            out.release_ids.append(self.champion.release_id if self.champion else "")
        self.retrains = sum(1 for m in markers if m.kind == "retrain")
        self.refusals = sum(1 for m in markers if m.kind == "refusal")
        return out

    def _report(self, rows: list[int], rets: list[float], now: int, ppy: float) -> list[Retrain]:
        d = self.data
        if self.proba is None:
            return []
        p = self.proba[rows]
        ok = np.isfinite(p)
        if not ok.any():
            return []
        up_pred = p[ok] > 0.5
        up_true = d.fwd[rows][ok] > 0
        metrics = {"accuracy": float(np.mean(up_pred == up_true)),
                   "sharpe": float(sharpe_ratio(np.asarray(rets), ppy))}
        if up_pred.any():
            metrics["precision"] = float(np.mean(up_true[up_pred]))
        return self._feed(MetricsReported(
            event_id=derived_event_id(self._scope(), f"metrics/{rows[-1]}"), ts_event=now,
            ts_init=now, symbol=d.symbol, window=f"{len(rows)}bars", metrics=metrics,
            window_start=int(d.ts[rows[0]]), window_end=now,
            release_id=self.champion.release_id if self.champion else None), now)

    def _react(self, commands: Sequence[Retrain], i: int) -> None:
        del i
        for c in commands:
            self.markers.append(Marker(ts=int(self.state.clock_ns), kind="retrain",
                                       text=f"{c.reason}"))

    async def _retrain(self, command: Retrain, i: int, now: int) -> None:
        d = self.data
        self.retrains += 1
        run_id = derived_event_id(self._scope(), f"retrain/{i}/{command.id}")
        self._feed(TrainingStarted(
            event_id=derived_event_id(run_id, "started"), ts_event=now, ts_init=now,
            symbol=d.symbol, run_id=run_id, trainer=self.config.pipeline.models[0]), now)
        outcome = await self.cache.outcome(d.symbol, int(d.ts[i]), self.champion,
                                           self.spec.name)
        self.compute_s += outcome.compute_s
        events = self._lifecycle(outcome, now, run_id)
        self.pending.append(_Pending(events[0].ts_event, events, outcome, now))
        if self.retuning and outcome.error is None:  # as the service: after a completed job
            tuned = await self._retune(outcome, i)
            if self.train_delay_s is None:
                at = now + max(1, int((outcome.compute_s + tuned.compute_s)
                                      / max(self.spec.hardware_speedup, 1e-9) * NS))
            else:
                at = events[0].ts_event
            self.pending.append(_Pending(max(at, events[0].ts_event), [], None, now, tuned))
        self.pending.sort(key=lambda p: p.at_ns)  # stable: a model swaps before its params

    async def _retune(self, outcome: Outcome, i: int) -> RetuneOutcome:
        """Re-tune the params on the bars up to ``ts[i]`` with the champion ``outcome`` leaves
        (its release, or the current champion when it was refused)."""
        assert self.retunes is not None and self.risk is not None and self.book is not None
        d = self.data
        champion = outcome.release if outcome.release is not None else self.champion
        tuned = await self.retunes.outcome(d.symbol, int(d.ts[i]), champion, self.book.params,
                                           self.risk)
        self.compute_s += tuned.compute_s
        self.risk_compute_s += tuned.compute_s
        return tuned

    def _apply_first(self, first: Outcome, at: int) -> None:
        """The warm-up model: the same for every policy, trading from the first step."""
        self.compute_s += first.compute_s
        run_id = derived_event_id(self._scope(), "warmup")
        events = self._lifecycle(first, at - 1, run_id)
        for ev in events:
            self._feed(msgspec.structs.replace(ev, ts_event=at - 1, ts_init=at - 1), at - 1)
        self._settle(_Pending(at - 1, events, first, at - 1), self.data.start, at_ns=at - 1)

    def _settle(self, p: _Pending, step: int, at_ns: int | None = None) -> None:
        at = p.at_ns if at_ns is None else at_ns
        if p.retune is not None:
            self._settle_params(p.retune, step, at, p.decided_ns)
            return
        o = p.outcome
        assert o is not None
        if o.release is not None:
            self.releases += 1
            self._swap(o.release, step, at)
            dsr = o.metrics.get("dsr")
            self.markers.append(Marker(
                ts=at, kind="release", release_id=o.release.release_id, decided_ts=p.decided_ns,
                text=f"release {o.release.release_id}"
                     + (f" (DSR {dsr:.3f})" if dsr is not None else "")))
        elif o.error is not None:
            self.failures += 1
            self.markers.append(Marker(ts=at, kind="failed", text=o.error,
                                       decided_ts=p.decided_ns))
        else:
            self.refusals += 1
            self.markers.append(Marker(ts=at, kind="refusal", decided_ts=p.decided_ns,
                                       text="; ".join(r for r in o.reasons if not r.startswith((
                                           "min_trades_met", "dsr_pass", "beats_champion",
                                           "no_champion")))))


    def _settle_params(self, t: RetuneOutcome, step: int, at: int, decided: int) -> None:
        """A re-tune's verdict at ``at``: released params trade from ``step`` on."""
        assert self.book is not None
        if t.error is not None:
            self.params_failures += 1
            self.markers.append(Marker(ts=at, kind="params_failed", text=t.error,
                                       decided_ts=decided))
        elif t.passed and t.params is not None:
            self.params_releases += 1
            params = StrategyParams.from_dict(t.params)
            self.book.set_params(step, params)
            self.params_id = t.key[:16]
            changed = {k: v for k, v in params.as_dict().items() if v != NEUTRAL.as_dict()[k]}
            self.markers.append(Marker(
                ts=at, kind="params", decided_ts=decided, release_id=self.params_id,
                text="params " + (", ".join(f"{k}={v:g}" for k, v in changed.items())
                                  or "neutral") + f" (Sharpe {t.metrics.get('sharpe', 0.0):.2f}"
                     f" vs current {t.metrics.get('current_sharpe', 0.0):.2f})"))
        else:
            self.params_refusals += 1
            self.markers.append(Marker(ts=at, kind="params_refusal", decided_ts=decided,
                                       text="; ".join(r for r in t.reasons if not r.startswith((
                                           "beats_neutral", "beats_current", "dsr_pass",
                                           "min_trades_met", "point_chosen")))))
        self.decisions.append(f"{at}:params:{t.key}:{t.passed}")


def _tick(now: int) -> Event:
    """The tick at ``now``, built on the simulated clock (deterministic to the byte)."""
    return ClockTick(event_id=derived_event_id("clock", f"tick/{now}"), ts_event=now,
                     ts_init=now)


async def simulate(
    spec: PolicySpec, data: SymbolData, config: Config, cache: RetrainCache, first: Outcome,
    train_delay_s: float | None, progress: ProgressFn | None = None,
    retunes: RetuneCache | None = None,
) -> tuple[SymbolPath, dict[str, Any]]:
    """Run one policy on one symbol; the path and its counters. ``retunes``: the shared risk
    re-tunes (needed when the policy re-tunes)."""
    sim = _Sim(spec, data, config, cache, train_delay_s, progress, retunes)
    path = await sim.run(first)
    counters = {"retrains": sim.retrains, "releases": sim.releases, "refusals": sim.refusals,
                "failures": sim.failures, "compute_s": sim.compute_s,
                "params_releases": sim.params_releases, "params_refusals": sim.params_refusals,
                "params_failures": sim.params_failures, "risk_compute_s": sim.risk_compute_s,
                "decisions": hashlib.sha256("\n".join(sim.decisions).encode()).hexdigest()}
    return path, counters


def replay_actual(
    spec: PolicySpec, data: SymbolData, config: Config, cache: RetrainCache,
    first: Recipe | None, swaps: Sequence[tuple[int, Recipe | None]], markers: Sequence[Marker],
) -> tuple[SymbolPath, dict[str, Any]]:
    """The recorded champions of a period traded on its bars (``--from-log``'s ``actual``)."""
    sim = _Sim(spec, data, config, cache, None, None)
    path = sim.run_scripted(first, swaps, markers)
    return path, {"retrains": sim.retrains, "releases": sim.releases,
                  "refusals": sim.refusals, "failures": 0, "compute_s": 0.0,
                  "decisions": hashlib.sha256(
                      "\n".join(f"{m.ts}:{m.kind}:{m.text}" for m in markers).encode()
                  ).hexdigest()}


def assemble(spec: PolicySpec, paths: dict[str, SymbolPath],
             counters: dict[str, dict[str, Any]]) -> PolicyResult:
    return PolicyResult(
        policy=spec.name, settings=spec.settings(), paths=paths,
        retrains=sum(c["retrains"] for c in counters.values()),
        releases=sum(c["releases"] for c in counters.values()),
        refusals=sum(c["refusals"] for c in counters.values()),
        failures=sum(c["failures"] for c in counters.values()),
        compute_s=float(sum(c["compute_s"] for c in counters.values())),
        params_releases=sum(c.get("params_releases", 0) for c in counters.values()),
        params_refusals=sum(c.get("params_refusals", 0) for c in counters.values()),
        params_failures=sum(c.get("params_failures", 0) for c in counters.values()),
        risk_compute_s=float(sum(c.get("risk_compute_s", 0.0) for c in counters.values())))


__all__ = ["SymbolData", "assemble", "prepare_symbol", "replay_actual", "simulate"]
