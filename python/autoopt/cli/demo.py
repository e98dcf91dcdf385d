"""``autoopt demo``: the main job end to end on the embedded server and bundled real data."""

from __future__ import annotations

import typer

from autoopt.cli.context import console, run


def demo(
    ctx: typer.Context,
    source: str = typer.Option("bundled:EURUSD,GOOG", help="Bars to run on (data source URI)."),
) -> None:
    """The main job end to end: history → retrain → gated release, then `serve` on a live feed
    until a trigger fires and a gated retrain follows, then replay the decisions (same digest)."""
    from autoopt.demo import run_demo

    cfg = ctx.obj.config()
    console.rule("[bold]autoopt demo")
    console.print(f"data dir: {cfg.data_dir}")
    run(run_demo(cfg, source=source, console=console))
