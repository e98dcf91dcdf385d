"""``autoopt retrain``: the nightly pipeline from the command line, with progress bars."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from autoopt.cli.context import CliContext, check_models, cli_symbols, console, fail, run
from autoopt.errors import ConfigError

if TYPE_CHECKING:
    from autoopt.config import Config
    from autoopt.pipeline.retrain import Progress as StepReport
    from autoopt.pipeline.summary import RetrainSummary

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"10m"``, ``"1.5h"``; ConfigError otherwise."""
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"--time-budget {text!r}: expected a positive duration like 90s, 10m, 1h")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [s.strip() for s in text.split(",") if s.strip()]
    return items or None


class _Bars:
    """One rich progress bar per (symbol, model) job, fed from the pipeline's reports."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[tuple[str, str], object] = {}

    def __call__(self, rep: StepReport) -> None:
        key = (rep.symbol, rep.model)
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(f"{rep.symbol} {rep.model}", total=rep.total)
        self.progress.update(
            self.tasks[key],  # type: ignore[arg-type]
            completed=rep.done, total=rep.total,
            description=f"{rep.symbol} {rep.model}: {rep.stage}",
        )


async def _run(
    config: Config, source: str, symbols: list[str] | None, models: list[str] | None,
    trials: int | None, budget: float | None, quiet: bool, plugins: Any,
) -> RetrainSummary:
    from autoopt.pipeline import run_retrain
    from autoopt.runtime import open_event_log

    log = await open_event_log(config)
    try:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, disable=quiet, transient=False,
        ) as progress:
            return await run_retrain(
                config, source=source, event_log=log, symbols=symbols, models=models,
                trials=trials, time_budget_s=budget, progress=_Bars(progress), plugins=plugins,
            )
    finally:
        await log.close()


def _table(summary: RetrainSummary) -> Table:
    table = Table(title=f"retrain {summary.run_id}")
    for col in ("symbol", "model", "score", "dsr", "trades", "deployed", "release", "why"):
        table.add_column(col)
    for r in summary.results:
        dsr = r.metrics.get("dsr")
        trades = r.metrics.get("n_trades")
        table.add_row(
            r.symbol, r.model,
            "-" if r.score is None else f"{r.score:.3f}",
            "-" if dsr is None else f"{dsr:.3f}",
            "-" if trades is None else str(int(trades)),
            "[green]yes[/green]" if r.deployed else "no",
            r.release_id or "-",
            "; ".join(x.split(":", 1)[0] for x in r.reasons),
        )
    return table


def retrain(
    ctx: typer.Context,
    source: str | None = typer.Option(
        None, "--source", "-s",
        help="Bars: bundled:EURUSD,GOOG | file:PATH | ccxt:EXCHANGE:SYMBOL:TF | log:SYMBOLS.",
    ),
    symbols: str | None = typer.Option(None, "--symbols", help="Comma-separated symbols."),
    trials: int | None = typer.Option(None, "--trials", min=1, help="Optuna trials per model."),
    time_budget: str | None = typer.Option(
        None, "--time-budget", help="Wall-clock budget for the whole run, e.g. 10m, 1h, 600s."
    ),
    models: str | None = typer.Option(None, "--models", help="Comma-separated trainers (lgbm)."),
    json_path: str | None = typer.Option(None, "--json", help="Write the summary JSON here."),
    config_path: str | None = typer.Option(None, "--config", help="TOML config file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    via_service: bool = typer.Option(
        False, "--via-service",
        help="Ask the running service (autoopt serve) to retrain --symbols and follow each "
             "request to its verdict, instead of training here.",
    ),
    reason: str = typer.Option("manual", "--reason", help="With --via-service: why (recorded)."),
    timeout: float = typer.Option(
        3600.0, "--timeout", min=1.0, help="With --via-service: seconds to wait for verdicts."),
    service_wait: float = typer.Option(
        30.0, "--service-wait", min=1.0,
        help="With --via-service: seconds for a running service to decide on the request "
             "before giving up (no service consumes the log)."),
    report_path: str | None = typer.Option(
        None, "--report", help="Also write the run's HTML report here (as autoopt report retrain)."
    ),
) -> None:
    """Retrain every symbol and model: tune, validate, gate, release; all recorded as events."""
    base = ctx.obj if isinstance(ctx.obj, CliContext) else CliContext()
    cli = CliContext(config_path=config_path or base.config_path, data_dir=base.data_dir,
                     verbose=base.verbose)
    config = cli.config()
    if via_service:
        _via_service(config, symbols, reason, timeout, wanted_models=_split(models),
                     service_wait=service_wait)
        return
    if source is None:
        fail("--source is required (or --via-service, to ask the running service)")
    try:
        budget = parse_duration(time_budget) if time_budget is not None else None
    except ConfigError as exc:
        fail(str(exc))
    wanted = cli_symbols(symbols) if symbols is not None else None
    from autoopt.runtime import open_plugins

    wanted_models = _split(models)
    plugins = open_plugins(config)
    check_models(plugins, wanted_models or config.pipeline.models,
                 "--models" if wanted_models else "pipeline.models")  # before any work starts
    summary = run(_run(config, source, wanted, wanted_models, trials, budget, quiet, plugins))
    console.print(_table(summary))
    if summary.global_best is not None:
        b = summary.global_best
        console.print(f"global best: {b.symbol} {b.model} score {b.score:.3f}"
                      + (f" (release {b.release_id})" if b.release_id else ""))
    if json_path is not None:
        summary.write(json_path)
        console.print(f"summary written to {json_path}")
    if report_path is not None:
        from autoopt.cli.report import write_run_report

        write_run_report(config, summary.run_id, report_path)
    if summary.failed:
        for r in summary.failed:
            console.print(f"[red]failed[/red] {r.symbol} {r.model}: {r.error}")
        raise typer.Exit(1)


def _via_service(config: Config, symbols: str | None, reason: str, timeout: float,
                 wanted_models: list[str] | None, service_wait: float = 30.0) -> None:
    """Request each symbol's retrain from the service and follow it (`autoopt.cli.via_service`)."""
    if symbols is None:
        fail("--via-service needs --symbols (the service retrains what it is asked for)")
    wanted = cli_symbols(symbols)
    if wanted_models:
        fail("--models does not apply with --via-service: the service trains pipeline.models")

    async def go() -> list[Any]:
        from autoopt.cli.via_service import follow
        from autoopt.runtime import open_event_log

        log = await open_event_log(config)
        try:
            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=console, transient=False,
            ) as progress:  # one bar per job, from the service's JobProgress events
                bars = _Bars(progress)
                followed = [await follow(log, s, reason, list(config.pipeline.models),
                                         timeout_s=timeout, service_wait_s=service_wait,
                                         echo=progress.console.print,
                                         on_progress=bars) for s in wanted]  # type: ignore[arg-type]
                for task in progress.tasks:  # the verdict is in: the job's last steps are done
                    progress.update(task.id, completed=task.total)
                return followed
        finally:
            await log.close()

    table = Table(title="retrain via service")
    for col in ("symbol", "model", "outcome", "release", "why"):
        table.add_column(col)
    failed = False
    for follower in run(go()):
        for o in follower.outcomes.values():
            failed |= o.how == "failed"
            table.add_row(follower.request.symbol, o.model, o.how, o.release_id or "-",
                          "; ".join(r.split(":", 1)[0] for r in o.reasons))
    console.print(table)
    if failed:
        raise typer.Exit(1)


app = typer.Typer(help="Run the retrain pipeline.")
app.command("retrain")(retrain)

__all__ = ["app", "parse_duration", "retrain"]
