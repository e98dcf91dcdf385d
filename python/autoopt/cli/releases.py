"""``autoopt releases list|show|rollback``: the model registry from the command line.

Rollback moves ``current`` back (to the parent release, or ``--to``) and appends a
``ModelRolledBack`` event, so the switch is part of the audited history like a release.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import unquote

import msgspec
import typer
from rich.table import Table

from autoopt.cli.context import CliContext, cli_symbol, console, fail, run
from autoopt.errors import ArtifactError
from autoopt.registry import CURRENT, ModelRegistry

app = typer.Typer(help="List, inspect and roll back model releases.", no_args_is_help=True)


def _cli(ctx: typer.Context) -> CliContext:
    return ctx.obj if isinstance(ctx.obj, CliContext) else CliContext()


def registry_symbols(registry: ModelRegistry) -> list[str]:
    """Every symbol with a folder in the registry."""
    if not registry.models.is_dir():
        return []
    return sorted(unquote(p.name) for p in registry.models.iterdir()
                  if p.is_dir() and not p.name.startswith("."))


@app.command("list")
def list_releases(
    ctx: typer.Context,
    symbol: str | None = typer.Argument(None, help="One symbol (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Releases per symbol, oldest first; ``*`` marks the current one."""
    registry = ModelRegistry(_cli(ctx).config().data_dir)
    symbols = [cli_symbol(symbol)] if symbol else registry_symbols(registry)
    rows = []
    for s in symbols:
        cur = registry.current(s)
        for m in registry.list(s):
            rows.append({
                "symbol": s, "release_id": m.release_id, "current": m.release_id == cur,
                "model_type": m.model_type, "created_at": m.created_at,
                "sharpe": m.metrics.get("sharpe"), "dsr": m.metrics.get("dsr"),
                "parent": m.parent_release, "features": len(m.features),
            })
    if as_json:
        console.print_json(msgspec.json.encode(rows).decode())
        return
    table = Table(title="releases")
    for col in ("", "symbol", "release", "model", "created", "sharpe", "dsr", "parent"):
        table.add_column(col)
    for r in rows:
        created = dt.datetime.fromtimestamp(r["created_at"] / 1e9, tz=dt.UTC)
        table.add_row(
            "*" if r["current"] else "", r["symbol"], r["release_id"], r["model_type"],
            created.strftime("%Y-%m-%d %H:%M:%S"),
            "-" if r["sharpe"] is None else f"{r['sharpe']:.3f}",
            "-" if r["dsr"] is None else f"{r['dsr']:.3f}",
            r["parent"] or "-",
        )
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    symbol: str = typer.Argument(..., help="Symbol."),
    release: str | None = typer.Argument(None, help=f"Release id (default: {CURRENT})."),
) -> None:
    """A release's manifest as JSON, after verifying its checksums."""
    symbol = cli_symbol(symbol)
    registry = ModelRegistry(_cli(ctx).config().data_dir)
    try:
        manifest, _ = registry.load(symbol, release)
    except ArtifactError as exc:
        fail(str(exc))
    console.print_json(msgspec.json.encode(manifest).decode())


async def _append_rollback(ctx_cli: CliContext, symbol: str, frm: str, to: str,
                           reason: str) -> None:
    from autoopt.events import ModelRolledBack
    from autoopt.runtime import open_event_log

    log = await open_event_log(ctx_cli.config())
    try:
        await log.append(ModelRolledBack.new(
            symbol=symbol, release_id=to, from_release_id=frm, reason=reason))
    finally:
        await log.close()


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    symbol: str = typer.Argument(..., help="Symbol."),
    to: str | None = typer.Option(None, "--to", help="Release to restore (default: the parent)."),
    reason: str = typer.Option("manual rollback", "--reason", help="Recorded in the event."),
) -> None:
    """Point ``current`` back and record a ModelRolledBack event."""
    symbol = cli_symbol(symbol)
    cli = _cli(ctx)
    registry = ModelRegistry(cli.config().data_dir)
    try:
        frm, target = registry.rollback(symbol, to)
    except ArtifactError as exc:
        fail(str(exc))
    try:
        run(_append_rollback(cli, symbol, frm, target, reason))
    except BaseException:
        registry.set_current(symbol, frm)  # no switch without its event
        raise
    console.print(f"{symbol}: current {frm} -> {target}")


__all__ = ["app", "registry_symbols"]
