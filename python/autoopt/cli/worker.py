"""``autoopt worker --study NAME``: join a running Optuna study from this process or host.

Any number of workers (processes, hosts) share one study through the configured storage
(``pipeline.optuna_storage``: PostgreSQL or ``nats`` across hosts, SQLite on one host); the
trial budget holds across all of them and a killed worker's trial is failed and retried
(`autoopt.studies.budget`). The objective is a function ``module:function`` taking an Optuna
trial and returning the value to minimise.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from autoopt.cli.context import CliContext, console, fail
from autoopt.errors import AutooptError, ConfigError


def _objective(spec: str):  # type: ignore[no-untyped-def]
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ConfigError(f"--objective {spec!r}: expected module:function")
    # as `python -m autoopt` does: a module in the working directory is found (the console
    # script's own sys.path[0] is its bin directory, so `mypkg.objectives` beside you was not)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--objective {spec!r}: {exc}") from None
    if not callable(fn):
        raise ConfigError(f"--objective {spec!r} is not callable")
    return fn


def worker(
    ctx: typer.Context,
    study: str = typer.Option(..., "--study", help="Name of the study to join."),
    objective: str = typer.Option(..., "--objective", help="module:function(trial) -> float."),
    trials: int = typer.Option(..., "--trials", min=1, help="The study's whole trial budget."),
    create: bool = typer.Option(False, "--create", help="Create the study if it does not exist."),
    grace: float = typer.Option(20.0, "--grace", help="Seconds without a heartbeat before a "
                                "running trial counts as dead (its worker killed)."),
) -> None:
    """Run trials of a shared study until it holds its budget (counted across all workers)."""
    import optuna

    from autoopt.pipeline.retrain import default_storage
    from autoopt.studies import configure_nats, open_storage, run_budgeted

    cli = ctx.obj if isinstance(ctx.obj, CliContext) else CliContext()
    config = cli.config()
    try:
        fn = _objective(objective)
        configure_nats(config.nats, config.data_dir)
        storage = open_storage(default_storage(config))
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if create:
            s = optuna.create_study(study_name=study, storage=storage, load_if_exists=True)
        else:
            try:
                s = optuna.load_study(study_name=study, storage=storage)
            except KeyError:
                raise ConfigError(f"no study {study!r} in the storage (--create makes it)") from None
        ran = run_budgeted(s, fn, trials, grace_s=grace)
    except AutooptError as exc:
        fail(str(exc))
    console.print(f"worker ran {ran} trial(s) of {study}", highlight=False)


__all__ = ["worker"]
