"""``autoopt report retrain|ab|release``: one self-contained HTML page (plotly inline, works
offline) per retrain run, experiment or release, built from the log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from autoopt.cli.context import cli_symbol, console, run

if TYPE_CHECKING:
    from autoopt.config import Config

app = typer.Typer(help="Write HTML reports (self-contained, offline) from the event log.",
                  no_args_is_help=True)

_OUT = typer.Option(None, "--out", "-o", help="Where to write the page (default: ./<kind>-<name>.html).")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:80]


def _written(path: Path) -> None:
    size = path.stat().st_size
    console.print(f"report written to {path} ({size / 1e6:.1f} MB)", highlight=False)


def write_run_report(config: Config, run_id: str, path: str) -> None:
    """Read run ``run_id`` from the log and write its report to ``path`` (``retrain --report``)."""
    from autoopt.reports.retrain import read_run, write_retrain_report
    from autoopt.runtime import open_event_log

    async def go():  # noqa: ANN202
        log = await open_event_log(config)
        try:
            return await read_run(log, run_id)
        finally:
            await log.close()

    _written(write_retrain_report(run(go()), path))


@app.command("retrain")
def retrain_report(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="The run id (autoopt retrain prints it; or log replay --type training.started)."),
    out: str | None = _OUT,
) -> None:
    """A retrain run: verdicts, gate numbers, challenger vs champion equity and drawdown,
    per-fold metrics, feature importances and their stability, Optuna history."""
    write_run_report(ctx.obj.config(), run_id, out or f"retrain-{_safe(run_id)}.html")


@app.command("release")
def release_report(
    ctx: typer.Context,
    symbol: str = typer.Argument(..., help="The symbol."),
    release: str | None = typer.Argument(None, help="A release id (default: the current champion)."),
    out: str | None = _OUT,
) -> None:
    """A release's life: why it was made (trigger, gate, lineage), its run's evidence, live vs
    expected performance, drift and refusals since, and the symbol's releases over time."""
    from autoopt.reports.release import read_release, write_release_report
    from autoopt.runtime import open_event_log

    symbol = cli_symbol(symbol)

    async def go():  # noqa: ANN202
        log = await open_event_log(ctx.obj.config())
        try:
            return await read_release(log, symbol, release)
        finally:
            await log.close()

    record = run(go())
    name = f"release-{_safe(symbol)}-{_safe(record.release_id)}.html"
    _written(write_release_report(record, out or name))


@app.command("ab")
def ab_report(
    ctx: typer.Context,
    experiment: str = typer.Argument(..., help="The experiment name."),
    out: str | None = _OUT,
) -> None:
    """An experiment: per-variant cumulative outcomes, the mSPRT confidence sequence, the
    guardrails and the decision."""
    from autoopt.reports.ab import read_experiment, write_ab_report
    from autoopt.runtime import open_event_log

    async def go():  # noqa: ANN202
        log = await open_event_log(ctx.obj.config())
        try:
            return await read_experiment(log, experiment)
        finally:
            await log.close()

    record = run(go())
    _written(write_ab_report(record, out or f"ab-{_safe(experiment)}.html"))


__all__ = ["app"]
