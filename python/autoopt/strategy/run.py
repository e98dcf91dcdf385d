"""One tuning run over symbols: out-of-sample probabilities, nested NSGA-II, the gate, the
trial ledger and (when asked and passed) the params release. Shared by ``autoopt tune-risk``
and the service, so both decide the same way.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import polars as pl

from autoopt.strategy.params import NEUTRAL
from autoopt.strategy.tuning import NestedResult, Trial, TuneSettings
from autoopt.validation.gate import GateConfig, GateVerdict
from autoopt.validation.metrics import max_drawdown, sharpe_ratio


@dataclass
class SymbolOutcome:
    symbol: str
    recipe: str
    result: NestedResult
    verdict: GateVerdict
    release_id: str = ""
    prior_trials: int = 0


def settings_of(config: Any, trials: int | None = None, seed: int | None = None) -> TuneSettings:
    r, p = config.risk, config.pipeline
    return TuneSettings(n_trials=trials or r.trials, outer_folds=r.outer_folds,
                        min_train=r.min_train, turnover_cap=r.turnover_cap,
                        leverage_cap=r.leverage_cap, drawdown_limit=r.drawdown_limit,
                        cost_bps=p.costs.fees_bps + p.costs.slippage_bps,
                        seed=p.seed if seed is None else seed)


def gate_config_of(config: Any) -> GateConfig:
    g = config.pipeline.gate
    return GateConfig(margin=g.margin, dsr_threshold=g.dsr_threshold, min_trades=g.min_trades)


def ledger_rows(run_id: str, res: NestedResult) -> list[Any]:
    """This run's trials as trial-ledger rows (source ``risk``): per-period Sharpe and the
    returns summed per day of the window each study tuned on."""
    from autoopt.pipeline.evidence import LedgerRow

    per = math.sqrt(res.periods_per_year)
    studies = [(f"outer{k}", f.study) for k, f in enumerate(res.folds)] + [("final", res.final)]
    return [LedgerRow(key=f"risk/{run_id}/{name}/{t.number}", source="risk", model="strategy",
                      sharpe=t.score.sharpe / per, days=list(t.days[0]) if t.days else [],
                      returns=list(t.days[1]) if t.days else [])
            for name, study in studies for t in study.trials]


def _ledger_events(symbol: str, run_id: str, rows: list[Any]) -> list[Any]:
    from autoopt.events import TrialLedgered

    return [TrialLedgered.new(symbol=symbol, key=r.key, source=r.source, run_id=run_id,
                              model=r.model, state=r.state, sharpe=r.sharpe, days=r.days,
                              returns=r.returns,
                              event_id=f"ledger-{r.key.replace('/', '-')}")
            for r in rows]


async def tune_symbol(config: Any, plugins: Any, symbol: str, bars: pl.DataFrame, *,
                      registry: Any, event_log: Any | None, settings: TuneSettings,
                      release: bool = False, run_id: str = "",
                      cause: Any = None) -> SymbolOutcome:
    from autoopt.strategy.gate import judge
    from autoopt.strategy.release import current_params, release_params
    from autoopt.strategy.signals import oos_probabilities
    from autoopt.strategy.simulate import MarketInputs
    from autoopt.strategy.tuning import tune_nested

    signal = await asyncio.to_thread(oos_probabilities, config, plugins, symbol, bars, registry)
    from autoopt.pipeline.dataset import periods_per_year

    ts = signal.bars["ts"].to_numpy()
    inputs = MarketInputs.from_bars(signal.bars, periods_per_year=periods_per_year(ts))
    current = current_params(registry, symbol) or NEUTRAL
    res = await asyncio.to_thread(tune_nested, symbol, inputs, signal.prob, current=current,
                                  settings=settings)
    prior, ledger, rows = 0, None, []
    if event_log is not None and config.pipeline.validation.ledger and run_id:
        # the model gate's N: the symbol's whole ledger (every model trial, feature selection
        # and risk search so far, plus this run), clustered by return series
        from autoopt.pipeline.ledger_log import read_ledger
        from autoopt.validation.ledger import effective_trials

        rows = ledger_rows(run_id, res)
        mine = {r.key for r in rows}  # a rerun of this run does not count its rows twice
        past = [r for r in await read_ledger(event_log, symbol) if r.key not in mine]
        prior = len(past)
        every = past + rows
        ledger = await asyncio.to_thread(effective_trials, len(every),
                                         [r.signature for r in every])
    verdict = judge(res, gate_config_of(config), prior_trials=prior, ledger=ledger)
    out = SymbolOutcome(symbol, signal.recipe, res, verdict, prior_trials=prior)
    if rows and event_log is not None:
        await event_log.append_many(_ledger_events(symbol, run_id, rows))
    if release and verdict.passed and res.chosen is not None and event_log is not None:
        ppy = res.periods_per_year
        metrics = {"sharpe": sharpe_ratio(res.oos_tuned, ppy),
                   "max_drawdown": max_drawdown(res.oos_tuned),
                   "neutral_sharpe": sharpe_ratio(res.oos_neutral, ppy),
                   "current_sharpe": sharpe_ratio(res.oos_current, ppy),
                   "dsr": verdict.stats.get("dsr", float("nan"))}
        manifest, _ = await release_params(
            registry, event_log, symbol, res.chosen, data_range=(int(ts[0]), int(ts[-1])),
            metrics=metrics, cause=cause, evidence=summary(out), reason="tune-risk: gate passed ("
            + ", ".join(r.code for r in verdict.reasons) + ")")
        out.release_id = manifest.release_id
    return out


def _point(t: Trial | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"trial": t.number, "params": t.params.as_dict(), "sharpe": t.score.sharpe,
            "max_drawdown": t.score.max_drawdown, "turnover": t.score.turnover,
            "max_exposure": t.score.max_exposure}


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def summary(o: SymbolOutcome) -> dict[str, Any]:
    """What ``--json`` writes for one symbol (NaN/inf as null)."""
    r = o.result
    ppy = r.periods_per_year
    return {
        "symbol": o.symbol, "recipe": o.recipe, "passed": o.verdict.passed,
        "release_id": o.release_id or None,
        "chosen": _point(r.final.chosen), "rule": r.final.rule,
        "front": [_point(t) for t in r.final.front],
        "current": r.current.as_dict(),
        "oos": {name: {"sharpe": _finite(sharpe_ratio(x, ppy)),
                       "max_drawdown": _finite(max_drawdown(x))}
                for name, x in (("tuned", r.oos_tuned), ("neutral", r.oos_neutral),
                                ("current", r.oos_current))},
        "outer_folds": [{"start_ts": int(r.oos_ts[0]) if k == 0 else None, "bars": f.hi - f.lo,
                         "tuned_sharpe": f.tuned.sharpe, "neutral_sharpe": f.neutral.sharpe,
                         "current_sharpe": f.current.sharpe,
                         "chosen": f.chosen.as_dict()} for k, f in enumerate(r.folds)],
        "gate": {"reasons": [{"rule": x.rule, "code": x.code, "passed": x.passed,
                              "message": x.message} for x in o.verdict.reasons],
                 "stats": {k: _finite(v) for k, v in o.verdict.stats.items()}},
        "n_trials": r.n_trials, "prior_ledger_trials": o.prior_trials,
    }


def report(outcomes: list[SymbolOutcome], path: str) -> None:
    """A self-contained HTML page: per symbol, the front, the chosen point, the OOS equity of
    tuned vs neutral vs current, and the gate's reasons."""
    import plotly.graph_objects as go

    from autoopt.reports.html import Column, Report, equity_figure, paragraphs, table_html

    rep = Report("tune-risk", "strategy params: NSGA-II in nested walk-forward, gated out of sample")
    for o in outcomes:
        r = o.result
        fig = go.Figure()
        trials = [t for t in r.final.trials if t.feasible]
        fig.add_scatter(x=[t.score.max_drawdown for t in trials], y=[t.score.sharpe for t in trials],
                        mode="markers", name="feasible trials", marker={"color": "#bbb"})
        fig.add_scatter(x=[t.score.max_drawdown for t in r.final.front],
                        y=[t.score.sharpe for t in r.final.front], mode="lines+markers",
                        name="Pareto front")
        if r.final.chosen is not None:
            fig.add_scatter(x=[r.final.chosen.score.max_drawdown], y=[r.final.chosen.score.sharpe],
                            mode="markers", name="chosen", marker={"size": 14, "symbol": "star"})
        fig.update_layout(height=380, xaxis_title="max drawdown", yaxis_title="Sharpe",
                          title=f"{o.symbol}: front on all bars")
        eq = equity_figure({"tuned": (r.oos_ts, r.oos_tuned), "neutral": (r.oos_ts, r.oos_neutral),
                            "current": (r.oos_ts, r.oos_current)},
                           title=f"{o.symbol}: out-of-sample equity (outer folds, after costs)")
        rows = [{"rule": x.rule, "code": x.code, "passed": "yes" if x.passed else "NO",
                 "message": x.message} for x in o.verdict.reasons]
        chosen = r.final.chosen.params.as_dict() if r.final.chosen else {}
        blocks: list[Any] = [paragraphs([
            f"verdict: {'RELEASE' if o.verdict.passed else 'REFUSED'}"
            + (f" (release {o.release_id})" if o.release_id else ""),
            f"model probabilities from {o.recipe}; {r.n_trials} trials; {r.final.rule}"]),
            fig, eq]
        blocks += [table_html(rows, [Column("rule", "rule", numeric=False),
                                     Column("code", "code", numeric=False),
                                     Column("passed", "passed", numeric=False),
                                     Column("message", "message", numeric=False)]),
                   table_html([{"param": k, "chosen": v, "current": r.current.as_dict()[k]}
                               for k, v in chosen.items()],
                              [Column("param", "param", numeric=False), Column("chosen", "chosen"),
                               Column("current", "current")])]
        rep.section(o.symbol, *blocks)
    rep.write(path)


__all__ = ["SymbolOutcome", "gate_config_of", "report", "settings_of", "summary", "tune_symbol"]
