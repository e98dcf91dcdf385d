"""``autoopt tune-risk``: tune a symbol's strategy params (threshold, band, holding, sizing,
stops, limits) with NSGA-II in nested walk-forward on the model's out-of-sample probabilities,
show the Pareto front, the chosen point and the gate's verdict, and release them with
``--release`` when the gate passes (docs/risk.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from autoopt.cli.context import CliContext, cli_symbols, console, fail, run
from autoopt.errors import AutooptError, ConfigError


def _out(text: str | None, what: str) -> Path | None:
    if text is None:
        return None
    p = Path(text)
    if p.exists() and p.is_dir():
        raise ConfigError(f"{what} {text!r} is a directory; give a file path")
    return p


async def _run(config: Any, plugins: Any, source: str, symbols: list[str], trials: int | None,
               release: bool) -> list[Any]:
    from autoopt.cli.backtest import _load
    from autoopt.ids import new_event_id
    from autoopt.registry import open_registry
    from autoopt.runtime import open_event_log
    from autoopt.strategy.run import settings_of, tune_symbol

    settings = settings_of(config, trials)
    log = await open_event_log(config)
    try:
        frames = await _load(plugins, source, symbols, log)
        registry = open_registry(config)
        run_id = new_event_id()
        outcomes = []
        for symbol in symbols:
            console.print(f"{symbol}: tuning ({settings.n_trials} trials x "
                          f"{settings.outer_folds + 1} studies)...", highlight=False)
            outcomes.append(await tune_symbol(config, plugins, symbol, frames[symbol],
                                              registry=registry, event_log=log,
                                              settings=settings, release=release,
                                              run_id=run_id))
        return outcomes
    finally:
        await log.close()


def _print(outcomes: list[Any]) -> None:
    from autoopt.strategy.run import summary

    for o in outcomes:
        s = summary(o)
        front = Table(title=f"{o.symbol}: Pareto front (all bars), {len(s['front'])} points")
        for col in ("trial", "sharpe", "max dd", "turnover", "threshold", "stop", "tp", "trail",
                    "vol tgt", "lev"):
            front.add_column(col, justify="right")
        chosen = s["chosen"]["trial"] if s["chosen"] else None
        for p in s["front"][:15]:
            q = p["params"]
            front.add_row(("* " if p["trial"] == chosen else "") + str(p["trial"]),
                          f"{p['sharpe']:.2f}", f"{p['max_drawdown']:.1%}", f"{p['turnover']:.3f}",
                          f"{q['entry_threshold']:.3f}", f"{q['stop_loss_atr']:g}",
                          f"{q['take_profit_atr']:g}", f"{q['trailing_stop_atr']:g}",
                          f"{q['vol_target']:g}", f"{q['max_leverage']:.2f}")
        console.print(front)
        oos = s["oos"]
        console.print(
            f"{o.symbol}: chosen by '{s['rule']}'; out of sample (outer folds, after costs): "
            + ", ".join(f"{k} Sharpe {v['sharpe'] if v['sharpe'] is not None else float('nan'):.2f}"
                        f" max dd {v['max_drawdown'] or 0:.1%}" for k, v in oos.items()),
            highlight=False)
        verdict = "[green]RELEASE[/green]" if o.verdict.passed else "[red]REFUSED[/red]"
        console.print(f"{o.symbol}: gate {verdict}"
                      + (f", released {o.release_id}" if o.release_id else ""))
        for r in o.verdict.reasons:
            mark = "ok " if r.passed else "NO "
            console.print(f"  {mark}{r.code}: {r.message}", highlight=False, markup=False)


def tune_risk(
    ctx: typer.Context,
    source: str = typer.Option(..., "--source", "-s",
                               help="Bars: bundled:EURUSD,GOOG | file:PATH | ccxt:... | log:SYMBOLS."),
    symbols: str = typer.Option(..., "--symbols", help="Comma-separated symbols."),
    trials: int | None = typer.Option(None, "--trials", min=1,
                                      help="NSGA-II trials per study (default risk.trials)."),
    release: bool = typer.Option(False, "--release",
                                 help="Release the chosen params when the gate passes."),
    json_path: str | None = typer.Option(None, "--json", help="Write the result here as JSON."),
    report_path: str | None = typer.Option(None, "--report", help="Write an HTML report here."),
    config_path: str | None = typer.Option(None, "--config", help="TOML config file."),
) -> None:
    """Tune strategy params jointly (Sharpe vs drawdown, turnover and leverage caps) and gate
    them against neutral and current params out of sample."""
    import msgspec

    from autoopt.runtime import open_plugins
    from autoopt.strategy.run import report, summary

    base = ctx.obj if isinstance(ctx.obj, CliContext) else CliContext()
    cli = CliContext(config_path=config_path or base.config_path, data_dir=base.data_dir,
                     verbose=base.verbose)
    wanted = cli_symbols(symbols)
    try:
        config = cli.config()
        json_out = _out(json_path, "--json")
        report_out = _out(report_path, "--report")
        plugins = open_plugins(config)
    except AutooptError as exc:
        fail(str(exc))
    outcomes = run(_run(config, plugins, source, wanted, trials, release))
    _print(outcomes)
    try:
        if json_out is not None:
            json_out.write_bytes(msgspec.json.encode([summary(o) for o in outcomes]))
            console.print(f"wrote {json_out}")
        if report_out is not None:
            report(outcomes, str(report_out))
            console.print(f"wrote {report_out}")
    except OSError as exc:
        fail(f"cannot write output: {exc.strerror or exc}")


__all__ = ["tune_risk"]
