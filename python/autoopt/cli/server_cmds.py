"""``autoopt server start|stop|status``: the embedded nats-server of a data dir."""

from __future__ import annotations

import typer

from autoopt.cli.context import console

app = typer.Typer(help="Manage the embedded NATS JetStream server of the data dir.", no_args_is_help=True)


@app.command()
def start(ctx: typer.Context) -> None:
    """Start (or reuse) the embedded server; it keeps running until `autoopt server stop`.

    A second start finds the running server and says so (each data dir has one server, on a
    free port it picked, so starts never fight over a port)."""
    from autoopt.log.server import ensure_server, server_status

    cfg = ctx.obj.config()
    already = server_status(cfg.data_dir).running
    url = ensure_server(cfg.data_dir, persistent=True)
    state = "already running" if already else "running"
    console.print(f"embedded nats-server {state} at [bold]{url}[/bold] (data dir {cfg.data_dir})")


@app.command()
def stop(ctx: typer.Context) -> None:
    """Stop the embedded server of the data dir."""
    from autoopt.log.server import stop_server

    cfg = ctx.obj.config()
    if stop_server(cfg.data_dir):
        console.print("embedded nats-server stopped")
    else:
        console.print("no embedded nats-server was running")


@app.command()
def status(ctx: typer.Context) -> None:
    """Show whether the embedded server runs, and where."""
    from autoopt.log.server import server_status

    cfg = ctx.obj.config()
    st = server_status(cfg.data_dir)
    if st.running:
        console.print(f"running: {st.url} pid={st.pid} store={st.store_dir} persistent={st.persistent}")
    else:
        console.print(f"not running (store {st.store_dir})")
        raise typer.Exit(1)
