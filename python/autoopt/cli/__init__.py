"""The ``autoopt`` command line (typer + rich).

Verbs live in small modules, one job each; this module only assembles them and owns the
global options (``--config``, ``--data-dir``, ``--debug``) shared through `CliContext`.

Errors: every `AutooptError` and every `OSError` (a used port, a missing file) ends as one
redacted ``error: ...`` line on stderr and exit code 2; anything else is a bug, shown as one
line and exit code 1, with the traceback only under ``--debug`` or ``AUTOOPT_DEBUG=1``.
"""

from __future__ import annotations

import errno
import sys

import typer

from autoopt.cli import (
    ab,
    backtest,
    demo,
    log_cmds,
    paper,
    portfolio,
    releases,
    report,
    retrain,
    schema,
    serve,
    server_cmds,
    tune_risk,
    why,
    worker,
)
from autoopt.cli.context import (
    DEBUG_ENV,
    CliContext,
    console,
    debug_enabled,
    print_error,
    set_debug,
)

app = typer.Typer(
    name="autoopt",
    help="Auto-optimization engine for ML trading systems.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)
app.add_typer(log_cmds.app, name="log")
app.add_typer(server_cmds.app, name="server")
app.add_typer(releases.app, name="releases")
app.add_typer(ab.app, name="ab")
app.add_typer(report.app, name="report")
app.command("demo")(demo.demo)
app.command("retrain")(retrain.retrain)
app.command("backtest")(backtest.backtest)
app.command("serve")(serve.serve)
app.command("replay")(serve.replay)
app.command("why")(why.why)
app.command("tune-risk")(tune_risk.tune_risk)
app.command("portfolio")(portfolio.portfolio)
app.command("schema")(schema.schema)
app.command("paper")(paper.paper)
app.command("worker")(worker.worker)


@app.callback()
def _global_options(
    ctx: typer.Context,
    config: str | None = typer.Option(
        None, "--config", "-c", help="TOML config file (else $AUTOOPT_CONFIG, else ./autoopt.toml)."
    ),
    data_dir: str | None = typer.Option(
        None, "--data-dir", help="Data dir (event store, models, studies); else $AUTOOPT_DATA_DIR."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks with errors (also $AUTOOPT_DEBUG=1)."
    ),
) -> None:
    set_debug(debug)
    ctx.obj = CliContext(config_path=config, data_dir=data_dir, verbose=verbose)


@app.command()
def version() -> None:
    """Print the autoopt version and the native extension's."""
    import autoopt
    from autoopt import _native

    console.print(f"autoopt {autoopt.__version__} (native {_native.__version__})")


@app.command()
def plugins(
    ctx: typer.Context,
    check: bool = typer.Option(
        False, "--check", help="Also build every component (imports its libraries) to prove it works."
    ),
) -> None:
    """List loaded plugins: name, version, components, hooks, where from; and any that failed."""
    from rich.table import Table

    from autoopt.errors import PluginError
    from autoopt.runtime import open_plugins

    loaded = open_plugins(ctx.obj.config())
    table = Table(title="autoopt plugins")
    for column in ("name", "version", "components", "hooks", "from"):
        table.add_column(column)
    for info in loaded.info():
        table.add_row(
            info.name, info.version, "\n".join(info.components), "\n".join(info.hooks), info.source
        )
    if check:
        for kind in ("trainer", "validator", "risk_tuner", "data_source", "feature_set",
                     "drift_detector"):
            for name in loaded.components(kind):
                try:
                    loaded.component(kind, name)
                except PluginError:
                    pass  # recorded in loaded.failures, printed below
    console.print(table)
    console.print(_components_by_kind(loaded))
    for failure in loaded.failures:
        console.print(f"[red]failed[/red] {failure.name} ({failure.source}): {failure.error}")
    if loaded.failures:
        raise typer.Exit(1)


def _components_by_kind(loaded: object) -> object:
    """Every component by kind, with the plugin and package that provide it (docs/plugins.md)."""
    from rich.table import Table

    from autoopt.plugins import LazyComponent

    origin = {i.name: i for i in loaded.info()}  # type: ignore[attr-defined]
    table = Table(title="components by kind")
    for column in ("kind", "name", "plugin", "package", "status"):
        table.add_column(column)
    for kind in ("trainer", "feature_set", "data_source", "validator", "drift_detector",
                 "risk_tuner"):
        for name, item in sorted(loaded.components(kind).items()):  # type: ignore[attr-defined]
            owner = loaded._owners.get(kind, {}).get(name, "?")  # type: ignore[attr-defined]  # noqa: SLF001
            info = origin.get(owner)
            package = f"{info.source} {info.version}".strip() if info else "?"
            missing = item.missing() if isinstance(item, LazyComponent) else ()
            status = f"missing: {', '.join(missing)}" if missing else "ok"
            table.add_row(kind, name, owner, package, status)
    return table


@app.command("config")
def show_config(
    ctx: typer.Context,
    toml: bool = typer.Option(False, "--toml", help="Print as TOML (a complete config file)."),
) -> None:
    """Print the effective configuration (defaults < file < environment); secrets masked."""
    import msgspec

    from autoopt.config import config_to_toml_dict, to_toml

    cfg = ctx.obj.config()
    if toml:
        print(to_toml(cfg, masked=True), end="")
    else:
        console.print_json(msgspec.json.encode(config_to_toml_dict(cfg, masked=True)).decode())


def _register_plugin_commands() -> None:
    """Commands contributed by plugins through the ``autoopt_cli_commands`` hook.

    Load failures are not reported here (every verb would repeat them); `autoopt plugins` and
    the verbs that use plugins report them.
    """
    import logging

    from autoopt.plugins import load_plugins

    manager_log = logging.getLogger("autoopt.plugins.manager")
    manager_log.disabled = True
    try:
        loaded = load_plugins()
    finally:
        manager_log.disabled = False
    for contributed in loaded.hook.autoopt_cli_commands():
        for item in contributed or ():
            if isinstance(item, typer.Typer):
                app.add_typer(item)
            else:
                app.command()(item)


_GLOBAL_OPTIONS_WITH_VALUE = {"--config", "-c", "--data-dir"}


def _may_name_a_plugin_command(args: list[str]) -> bool:
    """False when the verb is built in: importing every plugin (torch...) just to run
    `autoopt log info` would cost seconds, so plugins are loaded only for other verbs and help."""
    rest = iter(args)
    for arg in rest:
        if arg in _GLOBAL_OPTIONS_WITH_VALUE:
            next(rest, None)
        elif not arg.startswith("-"):
            builtin = {
                c.name or c.callback.__name__.replace("_", "-")
                for c in app.registered_commands
                if c.callback is not None
            } | {g.name for g in app.registered_groups}
            return arg not in builtin
    return True  # no verb: top-level help lists plugin commands too


def describe_os_error(exc: OSError) -> str:
    """An OSError as the operator needs it: what failed, on which file or address."""
    if exc.errno == errno.EADDRINUSE:
        return f"address already in use: {exc.strerror or exc} (another process holds the port)"
    what = exc.strerror or str(exc) or type(exc).__name__
    where = exc.filename if exc.filename is not None else ""
    return f"{where}: {what}" if where else what


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: one line per error, tracebacks only in debug mode."""
    from autoopt.errors import AutooptError

    args = sys.argv[1:] if argv is None else argv
    set_debug("--debug" in args)
    try:
        if _may_name_a_plugin_command(args):
            _register_plugin_commands()
        app(args=args, prog_name="autoopt", standalone_mode=True)
    except (AutooptError, OSError) as exc:
        if debug_enabled():
            raise
        print_error(str(exc) if isinstance(exc, AutooptError) else describe_os_error(exc))
        sys.exit(2)
    except Exception as exc:
        if debug_enabled():
            raise
        print_error(
            f"internal error: {type(exc).__name__}: {exc} (run with --debug or {DEBUG_ENV}=1 "
            "for the traceback)"
        )
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
