"""``autoopt server start|stop|status``: the embedded nats-server of a data dir."""

from __future__ import annotations

import typer

from autoopt.cli.context import console

app = typer.Typer(help="Manage the embedded NATS JetStream server of the data dir.", no_args_is_help=True)


@app.command()
def start(ctx: typer.Context) -> None:
    """Start (or reuse) the embedded server; it keeps running until `autoopt server stop`."""
    from autoopt.log.server import ensure_server

    cfg = ctx.obj.config()
    url = ensure_server(cfg.data_dir, persistent=True)
    console.print(f"embedded nats-server running at [bold]{url}[/bold] (data dir {cfg.data_dir})")


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
