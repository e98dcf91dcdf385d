"""``autoopt why SYMBOL [--at TIME] [--json]``: the champion and how it got there, from the log."""

from __future__ import annotations

import typer

from autoopt.cli.context import cli_symbol, console, fail, run


def why(
    ctx: typer.Context,
    symbol: str = typer.Argument(..., help="The symbol whose champion to explain."),
    at: str | None = typer.Option(
        None, "--at", help="As the log stood at this ISO-8601 time (UTC if naive); default now."
    ),
    as_json: bool = typer.Option(False, "--json", help="The explanation as one JSON object."),
) -> None:
    """Why the champion is what it is: trigger and evidence, what was tried, the gate's
    numbers, lineage, experiments, and what happened since (drift, refusals, rollbacks)."""
    import datetime as dt
    import time

    import msgspec

    from autoopt.reports.lineage import explain, read_story, render_lines
    from autoopt.runtime import open_event_log

    symbol = cli_symbol(symbol)
    at_ns = time.time_ns()
    if at is not None:
        try:
            stamp = dt.datetime.fromisoformat(at)
        except ValueError:
            fail(f"--at {at!r} is not an ISO-8601 time (e.g. 2026-05-01T12:00:00)")
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        at_ns = int(stamp.timestamp() * 1e9)

    async def go():  # noqa: ANN202
        log = await open_event_log(ctx.obj.config())
        try:
            return await read_story(log, symbol, at_ns=at_ns)
        finally:
            await log.close()

    explanation = explain(run(go()), symbol, at_ns)
    if as_json:
        typer.echo(msgspec.json.encode(explanation).decode())
        return
    for line in render_lines(explanation):
        console.print(line, highlight=False, markup=False)
    if explanation.champion is None:
        raise typer.Exit(1)


__all__ = ["why"]
