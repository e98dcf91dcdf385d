"""``autoopt worker --study NAME``: join a running Optuna study from this process or host.

Any number of workers (processes, hosts) share one study through the configured storage
(``pipeline.optuna_storage``: PostgreSQL or ``nats`` across hosts, SQLite on one host); the
trial budget holds across all of them and a killed worker's trial is failed and retried
(`autoopt.studies.budget`).

Two kinds of study:

* **a retrain's own study** (no ``--objective``): a retrain that tunes in a shared storage
  records what its objective is made of (`autoopt.pipeline.joinspec`). The worker reads it,
  loads the same bars through its own config's data source, rebuilds dataset, features,
  labels, folds and the objective, refuses in one line when its pipeline config or the rows it
  built differ from the retrain's, and runs trials until the retrain's budget is spent. The
  retrain's verdict is then judged on the best of every trial, whoever ran it. ``NAME`` may
  end in ``*`` (``EDGE.lgbm.*``): the newest matching retrain study with budget left, waited
  for with ``--wait`` (start workers before the retrain).
* **any study** (``--objective module:function`` taking an Optuna trial, ``--trials N``).
"""

from __future__ import annotations

import asyncio
import fnmatch
import importlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import typer

from autoopt.cli.context import CliContext, console, fail
from autoopt.errors import AutooptError, ConfigError, DataError


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


def find_retrain_study(storage: Any, pattern: str, *, wait_s: float,
                       clock: Callable[[], float] = time.monotonic,
                       poll_s: float = 0.5) -> tuple[str, dict[str, Any]]:
    """(name, join spec) of the retrain study ``pattern`` names: exactly, or with ``*`` the
    newest match whose budget is not spent; waits up to ``wait_s`` for one to appear."""
    import optuna

    from autoopt.pipeline.joinspec import spec_of
    from autoopt.studies import spent_trials

    storage = optuna.storages.get_storage(storage)
    glob = any(c in pattern for c in "*?[")
    deadline = clock() + wait_s
    while True:
        studies = sorted(storage.get_all_studies(), key=lambda s: -s._study_id)
        for s in studies:
            spec = spec_of(s.user_attrs)
            if spec is None or not fnmatch.fnmatchcase(s.study_name, pattern):
                continue
            if not glob:
                return s.study_name, spec
            study = optuna.load_study(study_name=s.study_name, storage=storage)
            if len(spent_trials(study)) < int(spec.get("n_trials", 0)):
                return s.study_name, spec
        if clock() >= deadline:
            waited = f" (waited {wait_s:g} s)" if wait_s else " (--wait S waits for one)"
            raise ConfigError(f"no retrain study {pattern!r} "
                              f"{'with trials left ' if glob else ''}that workers can join "
                              f"in the storage{waited}")
        time.sleep(poll_s)


def _bars(config: Any, plugins: Any, uri: str, symbol: str) -> Any:
    """The symbol's bars from ``uri``, read as a retrain reads them: a plain source loads them,
    an exchange's and the log's come from the event log (where the retrain stored them)."""
    src = plugins.data_source_for(uri)
    if not (hasattr(src, "aload") or hasattr(src, "load_since")):
        frames = src.load(uri, [symbol])
    else:
        async def from_log() -> Any:
            from autoopt.pipeline.dataset import validation_policy
            from autoopt.pipeline.ingest import stored_bars
            from autoopt.runtime import open_event_log

            log = await open_event_log(config)
            try:
                if hasattr(src, "aload"):
                    return await src.aload(uri, [symbol], log)
                bars = await stored_bars(log, symbol, src.timeframe(uri),
                                         validation_policy(config.pipeline.data_policy))
                return {} if bars is None else {symbol: bars}
            finally:
                await log.close()

        frames = asyncio.run(from_log())
    if symbol not in frames:
        raise DataError(f"{symbol}: source {uri!r} returned no bars for it")
    return frames[symbol]


def join_retrain(config: Any, pattern: str, *, source: str | None, wait_s: float,
                 grace_s: float) -> tuple[str, int]:
    """Join the retrain study ``pattern`` names; (study name, trials this worker ran)."""
    from autoopt import search
    from autoopt.pipeline import joinspec
    from autoopt.pipeline.retrain import default_storage
    from autoopt.runtime import open_plugins
    from autoopt.studies import open_storage

    url = default_storage(config)
    name, spec = find_retrain_study(open_storage(url), pattern, wait_s=wait_s)
    joinspec.check_config(spec, config, name)
    plugins = open_plugins(config)
    trainer = plugins.trainer(str(spec["trainer"]))
    if not isinstance(trainer, search.SearchTrainer):
        raise ConfigError(f"trainer {spec['trainer']!r} runs its own search (a legacy `tune`): "
                          "only the core's searches (SDK trainers) can be joined")
    frame = _bars(config, plugins, joinspec.source_of(spec, source, config), str(spec["symbol"]))
    task = joinspec.rebuild_task(
        config, spec, frame, plugins.component("feature_set", config.pipeline.feature_set),
        storage=url, study=name)
    ran: list[int] = []
    search.tune(trainer.sdk, replace(task, on_trial=lambda rec: ran.append(rec.number)),
                join=True, grace_s=grace_s)
    return name, len(ran)


def worker(
    ctx: typer.Context,
    study: str = typer.Option(..., "--study", help="Name of the study to join; a retrain's "
                              "study may be named with a trailing * (SYMBOL.MODEL.*)."),
    objective: str | None = typer.Option(
        None, "--objective", help="module:function(trial) -> float, for a study that is not a "
        "retrain's (needs --trials)."),
    trials: int | None = typer.Option(
        None, "--trials", min=1, help="The study's whole trial budget (with --objective; a "
        "retrain's study records its own)."),
    create: bool = typer.Option(False, "--create", help="Create the study if it does not "
                                "exist (with --objective)."),
    grace: float = typer.Option(20.0, "--grace", help="Seconds without a heartbeat before a "
                                "running trial counts as dead (its worker killed)."),
    source: str | None = typer.Option(
        None, "--source", help="A retrain's study: the URI to load its bars from (default: "
        "the retrain's, unless it carries a secret, then [service] source)."),
    wait: float = typer.Option(0.0, "--wait", min=0.0, help="Seconds to wait for the "
                               "retrain's study to appear (start workers before the retrain)."),
    config_path: str | None = typer.Option(None, "--config", help="TOML config file."),
) -> None:
    """Run trials of a shared study until it holds its budget (counted across all workers)."""
    import optuna

    from autoopt.pipeline.retrain import default_storage
    from autoopt.studies import configure_nats, open_storage, run_budgeted

    base = ctx.obj if isinstance(ctx.obj, CliContext) else CliContext()
    cli = CliContext(config_path=config_path or base.config_path, data_dir=base.data_dir,
                     verbose=base.verbose)
    config = cli.config()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        configure_nats(config.nats, config.data_dir)
        if objective is None:
            if trials is not None or create:
                raise ConfigError("--trials and --create go with --objective; a retrain's "
                                  "study records its own budget")
            name, ran = join_retrain(config, study, source=source, wait_s=wait, grace_s=grace)
            console.print(f"worker ran {ran} trial(s) of {name}", highlight=False)
            return
        if trials is None:
            raise ConfigError("--objective needs --trials (the study's whole budget)")
        fn = _objective(objective)
        storage = open_storage(default_storage(config))
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


__all__ = ["find_retrain_study", "join_retrain", "worker"]
