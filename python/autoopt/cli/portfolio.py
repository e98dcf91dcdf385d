"""``autoopt portfolio``: weights across symbols by a skfolio method, walked forward with costs
and weight drift, judged against 1/N out of sample, released with ``--release`` when they pass
(`PortfolioWeightsReleased`; docs/risk.md)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from autoopt.cli.context import CliContext, cli_symbols, console, fail, run
from autoopt.errors import AutooptError


async def _run(config: Any, plugins: Any, source: str, symbols: list[str], method: str,
               name: str, release: bool, **kw: Any) -> Any:
    import asyncio

    from autoopt.cli.backtest import _load
    from autoopt.portfolio.release import release_weights
    from autoopt.portfolio.run import run_portfolio
    from autoopt.registry import open_registry
    from autoopt.runtime import open_event_log
    from autoopt.strategy.run import gate_config_of

    log = await open_event_log(config)
    try:
        frames = await _load(plugins, source, symbols, log)
        c = config.pipeline.costs
        out = await asyncio.to_thread(run_portfolio, frames, method,
                                      cost_bps=c.fees_bps + c.slippage_bps,
                                      gate=gate_config_of(config), **kw)
        if release and out.verdict.passed:
            manifest, _ = await release_weights(
                open_registry(config), log, name, out.weights, method=method,
                data_range=out.data_range, metrics={"sharpe": out.verdict.stats.get("sr", 0.0),
                                                    "dsr": out.verdict.stats.get("dsr", 0.0)},
                reason="portfolio: beat 1/N out of sample")
            out.release_id = manifest.release_id
        return out
    finally:
        await log.close()


def portfolio(
    ctx: typer.Context,
    source: str = typer.Option(..., "--source", "-s", help="Bars: file:PATH | bundled:... | log:SYMBOLS."),
    symbols: str = typer.Option(..., "--symbols", help="Comma-separated symbols (>= 2)."),
    method: str = typer.Option("hrp", "--method", "-m",
                               help="inverse_vol | hrp | risk_parity | mean_cvar | min_cdar."),
    rebalance: str = typer.Option("1M", "--rebalance", help="nD, nW, nM (calendar) or nB (bars)."),
    lookback: int = typer.Option(252, "--lookback", min=10, help="Bars each fit looks back."),
    max_weight: float = typer.Option(1.0, "--max-weight", help="Upper bound per asset."),
    name: str = typer.Option("default", "--name", help="Portfolio name the release goes under."),
    release: bool = typer.Option(False, "--release", help="Release the weights if they pass."),
    json_path: str | None = typer.Option(None, "--json", help="Write the result here as JSON."),
    report_path: str | None = typer.Option(None, "--report", help="Write an HTML report here."),
    config_path: str | None = typer.Option(None, "--config", help="TOML config file."),
) -> None:
    """Portfolio weights by skfolio, walked forward after costs and gated against 1/N."""
    from pathlib import Path

    import msgspec

    from autoopt.portfolio.run import report, summary
    from autoopt.portfolio.weights import check_method
    from autoopt.runtime import open_plugins
    from autoopt.symbols import validate_symbol

    base = ctx.obj if isinstance(ctx.obj, CliContext) else CliContext()
    cli = CliContext(config_path=config_path or base.config_path, data_dir=base.data_dir,
                     verbose=base.verbose)
    wanted = cli_symbols(symbols)
    try:
        check_method(method)
        validate_symbol(name, "--name")
        config = cli.config()
        plugins = open_plugins(config)
    except AutooptError as exc:
        fail(str(exc))
    out = run(_run(config, plugins, source, wanted, method, name, release, lookback=lookback,
                   rebalance=rebalance, max_weight=max_weight))
    s = summary(out)
    t = Table(title=f"{method} vs 1/N, out of sample after costs ({s['rebalances']} rebalances)")
    for col in ("", "Sharpe", "max dd", "total", "turnover/bar"):
        t.add_column(col, justify="right")
    for k, v in s["oos"].items():
        t.add_row(k, f"{v['sharpe'] or 0:.2f}", f"{v['max_drawdown'] or 0:.1%}",
                  f"{v['total_return'] or 0:.1%}", f"{v['turnover'] or 0:.4f}")
    console.print(t)
    console.print("weights now: " + ", ".join(f"{k} {v:.1%}" for k, v in out.weights.items()),
                  highlight=False)
    verdict = "[green]RELEASE[/green]" if out.verdict.passed else "[red]REFUSED[/red]"
    console.print(f"gate {verdict}" + (f", released {out.release_id}" if out.release_id else ""))
    for r in out.verdict.reasons:
        console.print(f"  {'ok ' if r.passed else 'NO '}{r.code}: {r.message}", highlight=False,
                      markup=False)
    try:
        if json_path:
            Path(json_path).write_bytes(msgspec.json.encode(s))
            console.print(f"wrote {json_path}")
        if report_path:
            report(out, report_path)
            console.print(f"wrote {report_path}")
    except OSError as exc:
        fail(f"cannot write output: {exc.strerror or exc}")


__all__ = ["portfolio"]
