"""``autoopt releases list|show|rollback``: the model registry from the command line.

Rollback moves ``current`` back (to the parent release, or ``--to``) and appends a
``ModelRolledBack`` event, so the switch is part of the audited history like a release.
"""

from __future__ import annotations

import datetime as dt

import msgspec
import typer
from rich.markup import escape
from rich.table import Table

from autoopt.cli.context import CliContext, cli_symbol, console, fail, run
from autoopt.errors import ArtifactError
from autoopt.registry import CURRENT, ModelRegistry, open_registry

app = typer.Typer(help="List, inspect and roll back model releases.", no_args_is_help=True)


def _cli(ctx: typer.Context) -> CliContext:
    return ctx.obj if isinstance(ctx.obj, CliContext) else CliContext()


def registry_symbols(registry: ModelRegistry) -> list[str]:
    """Every symbol with releases in the registry (either backend)."""
    return registry.symbols()


@app.command("list")
def list_releases(
    ctx: typer.Context,
    symbol: str | None = typer.Argument(None, help="One symbol (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Releases per symbol, oldest first; ``*`` marks the current one. Each is verified: one
    that fails (corrupt or truncated manifest, edited field, missing or changed file) is listed
    with status ``corrupt`` and its problem, and the others are still listed."""
    registry = open_registry(_cli(ctx).config())
    symbols = [cli_symbol(symbol)] if symbol else registry_symbols(registry)
    rows = []
    for s in symbols:
        cur = registry.current(s)
        for e in registry.entries(s):
            m = e.manifest
            rows.append({
                "symbol": s, "release_id": e.release_id, "current": e.release_id == cur,
                "status": "ok" if m is not None else "corrupt", "problem": e.problem,
                "model_type": m.model_type if m else None,
                "trainer": (m.trainer or None) if m else None,
                "created_at": m.created_at if m else None,
                "sharpe": m.metrics.get("sharpe") if m else None,
                "dsr": m.metrics.get("dsr") if m else None,
                "parent": m.parent_release if m else None,
                "features": len(m.features) if m else None,
            })
    if as_json:
        console.print_json(msgspec.json.encode(rows).decode())
        return
    table = Table(title="releases")
    for col in ("", "symbol", "release", "status", "model", "created", "sharpe", "dsr", "parent"):
        table.add_column(col)
    for r in rows:
        if r["status"] != "ok":
            table.add_row("*" if r["current"] else "", r["symbol"], r["release_id"],
                          "[red]corrupt[/red]", "-", "-", "-", "-", "-")
            continue
        created = dt.datetime.fromtimestamp(r["created_at"] / 1e9, tz=dt.UTC)
        table.add_row(
            "*" if r["current"] else "", r["symbol"], r["release_id"], "ok", r["model_type"],
            created.strftime("%Y-%m-%d %H:%M:%S"),
            "-" if r["sharpe"] is None else f"{r['sharpe']:.3f}",
            "-" if r["dsr"] is None else f"{r['dsr']:.3f}",
            r["parent"] or "-",
        )
    console.print(table)
    for r in rows:
        if r["problem"]:
            console.print(f"[red]corrupt[/red] {escape(r['problem'])}", highlight=False)


@app.command("show")
def show(
    ctx: typer.Context,
    symbol: str = typer.Argument(..., help="Symbol."),
    release: str | None = typer.Argument(None, help=f"Release id (default: {CURRENT})."),
) -> None:
    """A release's manifest as JSON, after verifying its checksums."""
    symbol = cli_symbol(symbol)
    registry = open_registry(_cli(ctx).config())
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


def _rollback_params(cli: CliContext, registry: object, symbol: str, to: str | None,
                     reason: str) -> None:
    from autoopt.runtime import open_event_log
    from autoopt.strategy.release import rollback_params

    async def go() -> tuple[str, str, object]:
        log = await open_event_log(cli.config())
        try:
            return await rollback_params(registry, log, symbol, to=to, reason=reason)
        finally:
            await log.close()

    try:
        frm, target, event = run(go())
    except ArtifactError as exc:
        fail(str(exc))
    console.print(f"{symbol}: strategy params {frm} -> {target}: "
                  f"{msgspec.json.encode(event.params).decode()}", highlight=False)  # type: ignore[attr-defined]


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    symbol: str = typer.Argument(..., help="Symbol."),
    to: str | None = typer.Option(None, "--to", help="Release to restore (default: the parent)."),
    reason: str = typer.Option("manual rollback", "--reason", help="Recorded in the event."),
    params: bool = typer.Option(False, "--params",
                                help="Roll back the symbol's strategy params, not its model."),
) -> None:
    """Point ``current`` back and record a ModelRolledBack event (``--params``: put the previous
    strategy params back and record a RiskParamsUpdated; engines follow either live)."""
    symbol = cli_symbol(symbol)
    cli = _cli(ctx)
    registry = open_registry(cli.config())
    if params:
        _rollback_params(cli, registry, symbol, to, reason)
        return
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
