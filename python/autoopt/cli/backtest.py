"""``autoopt backtest``: compare retraining policies on history, with progress bars, a table of
figures after costs, the significance tests, ``--json`` / ``--report`` outputs and one
`BacktestFinished` summary event in the live log.

Why the bars are read from the source directly: a backtest is a what-if over history, so it
never ingests bars, decisions or releases into the live streams; its retrains live in the
content-addressed cache under ``<data_dir>/backtests``. The one record it leaves in the live
log is the summary event (id derived from the run digest, so a rerun is stored once).

`backtest_and_record` is the whole job on loaded bars and an open log; the demo calls it too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from autoopt.cli.context import CliContext, check_models, cli_symbols, console, fail, run
from autoopt.errors import AutooptError, ConfigError, DataError

if TYPE_CHECKING:
    import polars as pl

    from autoopt.backtest.policies import PolicySpec
    from autoopt.backtest.result import BacktestResult
    from autoopt.config import Config
    from autoopt.events import BacktestFinished
    from autoopt.log import EventLog

_MAX_NS = 7_258_118_400 * 1_000_000_000  # 2200-01-01, the events' timestamp bound


# ------------------------------------------------------------------------------- parsing


def parse_instant(text: str, what: str) -> int:
    """``--start`` / ``--end``: an ISO date or datetime (UTC when no offset is given) or Unix
    nanoseconds; ConfigError naming ``what`` otherwise."""
    raw = text.strip()
    if raw.isdigit():
        value = int(raw)
    else:
        try:
            stamp = dt.datetime.fromisoformat(raw)
        except ValueError:
            raise ConfigError(f"{what} {text!r}: expected an ISO date or datetime (UTC), e.g. "
                              "2024-01-31 or 2024-01-31T12:00, or Unix nanoseconds") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        value = round(stamp.timestamp() * 1e6) * 1000
    if not 0 <= value <= _MAX_NS:
        raise ConfigError(f"{what} {text!r}: outside 1970-01-01 .. 2200-01-01")
    return value


def parse_train_delay(text: str) -> float | None:
    """``auto`` (None: the measured training time, scaled by the policy's hardware speed-up)
    or a duration like ``90s``, ``10m``, ``1h``."""
    from autoopt.cli.retrain import parse_duration

    if text.strip().lower() == "auto":
        return None
    try:
        return parse_duration(text)
    except ConfigError:
        raise ConfigError(f"--train-delay {text!r}: expected auto or a positive duration like "
                          "90s, 10m, 1h") from None


def _output_path(text: str | None, what: str) -> Path | None:
    """An output file's path, its folder created now: a bad path fails before the run, not
    after minutes of retraining."""
    if text is None:
        return None
    path = Path(text).expanduser()
    if not text.strip() or path.is_dir():
        raise ConfigError(f"{what} {text!r}: expected a file path, not a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{what} {text!r}: cannot create its folder: "
                          f"{exc.strerror or exc}") from None
    return path.resolve()


# ------------------------------------------------------------------------------ the run


class _Bars:
    """One rich progress bar per (policy, symbol), fed by the engine's progress callback."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[tuple[str, str], Any] = {}

    def __call__(self, policy: str, symbol: str, done: int, total: int) -> None:
        key = (policy, symbol)
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(f"{policy} {symbol}", total=total)
        self.progress.update(self.tasks[key], completed=done, total=total)


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def summary_event(result: BacktestResult, *, report_path: Path | None = None,
                  json_path: Path | None = None) -> BacktestFinished:
    """The one live-log record of ``result`` (see `autoopt.events.BacktestFinished`)."""
    from autoopt.backtest.metrics import POOLED
    from autoopt.events import BacktestFinished, BacktestPolicyFigures
    from autoopt.redact import redact

    figures = [
        BacktestPolicyFigures(
            policy=p.policy,
            sharpe=_finite(p.metrics.get(POOLED, {}).get("sharpe")),
            total_return=_finite(p.metrics.get(POOLED, {}).get("total_return")),
            retrains=p.retrains, releases=p.releases, refusals=p.refusals, failures=p.failures,
        )
        for p in result.policies
    ]
    return BacktestFinished.of_run(
        result.run_digest, source=redact(result.source), symbols=list(result.symbols),
        policies=figures, period_start=result.start_ns, period_end=result.end_ns,
        summary=list(result.comparison.summary) if result.comparison else [],
        report_path=str(report_path or ""), json_path=str(json_path or ""),
    )


async def backtest_and_record(
    config: Config,
    frames: dict[str, pl.DataFrame],
    specs: Sequence[PolicySpec],
    log: EventLog,
    *,
    source: str,
    out: Console = console,
    start_ns: int | None = None,
    end_ns: int | None = None,
    warmup: float = 0.3,
    trials: int | None = None,
    train_delay_s: float | None = None,
    jobs: int = 1,
    json_path: Path | None = None,
    report_path: Path | None = None,
    quiet: bool = False,
    trade_from_ns: int | None = None,
    actual: dict[str, Any] | None = None,
) -> tuple[BacktestResult, BacktestFinished]:
    """Run the backtest with progress bars, print it, write ``--json`` / ``--report``, then
    append the summary event (last: the outputs exist even if the log is down)."""
    import msgspec

    from autoopt.backtest.run import run_backtest

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=out, disable=quiet, transient=False,
    ) as progress:
        result = await run_backtest(
            config, frames, specs, source=source, start_ns=start_ns, end_ns=end_ns,
            warmup=warmup, trials=trials, train_delay_s=train_delay_s, jobs=jobs,
            progress=_Bars(progress), trade_from_ns=trade_from_ns, actual=actual)
    print_result(result, out)
    if json_path is not None:
        _write(json_path, msgspec.json.format(msgspec.json.encode(result)), "--json")
        out.print(f"result JSON written to {escape(str(json_path))}", soft_wrap=True)
    if report_path is not None:
        from autoopt.reports.backtest import write_backtest_report

        try:
            write_backtest_report(result, report_path)
        except OSError as exc:
            raise ConfigError(f"--report {report_path}: {exc.strerror or exc}") from None
        out.print(f"report written to {escape(str(report_path))}", soft_wrap=True)
    event = summary_event(result, report_path=report_path, json_path=json_path)
    stored = await log.append(event)
    out.print(f"summary event {type(event).type_tag()} {event.scope} "
              + ("already in the log (same run digest)" if stored.duplicate
                 else f"recorded in {stored.stream} at seq {stored.seq}"), soft_wrap=True)
    return result, event


def _write(path: Path, data: bytes, what: str) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror or exc}") from None


async def _load(plugins: Any, source: str, symbols: list[str] | None,
                log: EventLog) -> dict[str, pl.DataFrame]:
    """The bars of ``source``, read directly (never ingested into the live log)."""
    src = plugins.data_source_for(source)
    if hasattr(src, "aload"):
        frames = await src.aload(source, symbols, log)
    else:
        frames = await asyncio.to_thread(src.load, source, symbols)
    if symbols:
        missing = [s for s in symbols if s not in frames]
        if missing:
            raise DataError(f"--source {source!r} returned no bars for {missing}; it has "
                            f"{sorted(frames)}")
        frames = {s: frames[s] for s in symbols}
    if not frames:
        raise DataError(f"--source {source!r} returned no bars")
    return frames


async def _run(config: Config, plugins: Any, source: str, symbols: list[str] | None,
               specs: list[PolicySpec], **kwargs: Any) -> BacktestResult:
    from autoopt.runtime import open_event_log

    log = await open_event_log(config)  # first: an unreachable log fails before any work
    try:
        frames = await _load(plugins, source, symbols, log)
        result, _ = await backtest_and_record(config, frames, specs, log, source=source,
                                              **kwargs)
        return result
    finally:
        await log.close()


async def _run_from_log(config: Config, plugins: Any, symbols: list[str],
                        specs: list[PolicySpec], *, start_ns: int | None,
                        end_ns: int | None, **kwargs: Any) -> BacktestResult:
    """``--from-log``: the period's bars and what actually happened, from the live log and
    registry (read only); the recorded champions trade as ``actual``."""
    from autoopt.backtest.fromlog import read_period
    from autoopt.registry import open_registry
    from autoopt.runtime import open_event_log

    source = "log:" + ",".join(symbols)
    log = await open_event_log(config)
    try:
        frames, actual = await read_period(log, open_registry(config), symbols,
                                           plugins.data_source_for(source), start_ns, end_ns)
        result, _ = await backtest_and_record(
            config, frames, specs, log, source=source + " (from the live log)",
            end_ns=end_ns, trade_from_ns=start_ns, actual=actual, **kwargs)
        return result
    finally:
        await log.close()


# ----------------------------------------------------------------------------- printing


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return fmt.format(value)


def _pct(value: float | None) -> str:
    return _num(None if value is None else value * 100, "{:.1f}%")


_ROWS: tuple[tuple[str, str, Any], ...] = (
    ("total return", "total_return", _pct),
    ("annual return", "annual_return", _pct),
    ("Sharpe", "sharpe", _num),
    ("Sortino", "sortino", _num),
    ("max drawdown", "max_drawdown", _pct),
    ("Calmar", "calmar", _num),
    ("hit rate", "hit_rate", _pct),
    ("turnover / bar", "turnover", lambda v: _num(v, "{:.3f}")),
    ("trades", "trades", lambda v: _num(v, "{:.0f}")),
)


def metrics_table(result: BacktestResult) -> Table:
    """Each policy's pooled figures after costs (equal weight over symbols) and what it did,
    one column per policy so the policies read side by side at any terminal width."""
    from autoopt.backtest.metrics import POOLED

    scope = "pooled over " + ", ".join(result.symbols) if len(result.symbols) > 1 \
        else result.symbols[0]
    table = Table(title=f"after costs ({scope})")
    table.add_column("")
    for p in result.policies:
        table.add_column(p.policy, justify="right")
    for label, key, fmt in _ROWS:
        table.add_row(label, *(fmt(p.metrics.get(POOLED, {}).get(key)) for p in result.policies))
    table.add_section()
    for label, value in (
        ("retrains", lambda p: str(p.retrains)),
        ("releases", lambda p: str(p.releases)),
        ("refusals", lambda p: str(p.refusals)),
        ("failures", lambda p: str(p.failures)),
        ("compute s", lambda p: f"{p.compute_s:.1f}"),
        ("mean model age (days)", lambda p: _num(p.mean_model_age_s / 86_400.0, "{:.1f}")),
    ):
        table.add_row(label, *(value(p) for p in result.policies))
    if any(p.params_releases or p.params_refusals or p.params_failures
           for p in result.policies):  # risk re-tuning ([risk] retune, NAME+risk)
        table.add_section()
        for label, value in (
            ("params releases", lambda p: str(p.params_releases)),
            ("params refusals", lambda p: str(p.params_refusals)),
            ("params failures", lambda p: str(p.params_failures)),
            ("re-tune compute s", lambda p: f"{p.risk_compute_s:.1f}"),
        ):
            table.add_row(label, *(value(p) for p in result.policies))
    return table


def symbols_table(result: BacktestResult) -> Table | None:
    """Per symbol (when several): each policy's Sharpe and total return after costs."""
    if len(result.symbols) < 2:
        return None
    table = Table(title="per symbol: Sharpe · total return")
    table.add_column("symbol")
    for p in result.policies:
        table.add_column(p.policy, justify="right")
    for sym in result.symbols:
        table.add_row(sym, *(
            f"{_num(p.metrics.get(sym, {}).get('sharpe'))} · "
            f"{_pct(p.metrics.get(sym, {}).get('total_return'))}" for p in result.policies))
    return table


def significance_table(result: BacktestResult) -> Table | None:
    """The pairwise tests (paired block bootstrap, Jobson-Korkie-Memmel, Holm), or None."""
    cmp = result.comparison
    if cmp is None or not cmp.tests:
        return None
    table = Table(title=f"is the difference real? ({cmp.level:.0%} bootstrap CI of the Sharpe "
                        "difference; p: Jobson-Korkie-Memmel, then Holm-adjusted)")
    for col in ("policy", "vs", "ΔSharpe", "CI", "p", "Holm p", "verdict"):
        table.add_column(col, justify="left" if col in ("policy", "vs", "verdict") else "right",
                         no_wrap=col in ("policy", "ΔSharpe", "CI", "verdict"))
    colour = {"better": "green", "worse": "red", "indistinguishable": "yellow"}
    for t in cmp.tests:
        table.add_row(t.policy, t.baseline, _num(t.sharpe_diff),
                      f"{_num(t.ci_low)}..{_num(t.ci_high)}", _num(t.jkm_p, "{:.3f}"),
                      _num(t.p_adjusted, "{:.3f}"),
                      f"[{colour[t.verdict]}]{t.verdict}[/{colour[t.verdict]}]")
    return table


def print_result(result: BacktestResult, out: Console = console) -> None:
    """The tables, the comparison's sentences and the run's identity."""
    out.print(metrics_table(result))
    per_symbol = symbols_table(result)
    if per_symbol is not None:
        out.print(per_symbol)
    sig = significance_table(result)
    if sig is not None:
        out.print(sig)
    for sentence in result.comparison.summary if result.comparison else ():
        out.print(escape(sentence))
    for p in result.policies:
        if p.releases == 0:  # a flat path is the gate's verdict, not a bug: say so
            out.print(f"{escape(p.policy)}: no model passed the release gate ({p.refusals} "
                      f"refused, {p.failures} failed), so it never traded")
    risk = (f" · re-tune cache {result.risk_cache_hits} hits, {result.risk_cache_misses} misses"
            if result.risk_cache_hits or result.risk_cache_misses else "")
    out.print(f"run digest {result.run_digest} · {result.trials} trials per retrain · seed "
              f"{result.seed} · train delay {result.train_delay} · retrain cache "
              f"{result.cache_hits} hits, {result.cache_misses} misses{risk} · "
              f"{result.wall_s:.1f}s")


# ------------------------------------------------------------------------------ command


def backtest(
    ctx: typer.Context,
    source: str | None = typer.Option(
        None, "--source", "-s",
        help="Bars: bundled:EURUSD,GOOG | file:PATH | ccxt:EXCHANGE:SYMBOL:TF | log:SYMBOLS.",
    ),
    from_log: bool = typer.Option(
        False, "--from-log",
        help="Use the live log: its bars, the champion at --start and the promotions after it "
             "(traded as the policy 'actual', the first baseline); needs --symbols and --start.",
    ),
    symbols: str | None = typer.Option(None, "--symbols", help="Comma-separated symbols."),
    policies: str = typer.Option(
        "never,nightly,weekly,drift,degradation", "--policies", "-p",
        help="Comma-separated: never, nightly, weekly, drift, degradation (each optionally "
             "NAME+risk: re-tune the strategy params after every retrain), or path/to/x.toml "
             "(a policy file; see the README). The first is the baseline of the tests.",
    ),
    start: str | None = typer.Option(
        None, "--start", help="First bar: ISO date/datetime (UTC) or Unix ns."),
    end: str | None = typer.Option(None, "--end", help="Last bar: ISO date/datetime or Unix ns."),
    warmup: str = typer.Option(
        "30%", "--warmup", help="Share of each symbol's bars that trains the first model."),
    trials: int | None = typer.Option(
        None, "--trials", min=1, help="Optuna trials per retrain (default pipeline.trials)."),
    train_delay: str = typer.Option(
        "auto", "--train-delay",
        help="Time from a retrain decision to its release: auto (measured) or 90s, 10m, 1h."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Retrains run in parallel."),
    seed: int | None = typer.Option(
        None, "--seed", min=0, help="RNG seed (default pipeline.seed)."),
    json_path: str | None = typer.Option(
        None, "--json",
        help="Write the whole result here (figures, tests, equity curves); NaN/inf → null."),
    report_path: str | None = typer.Option(
        None, "--report", help="Write a self-contained HTML report here (PATH.html)."),
    config_path: str | None = typer.Option(None, "--config", help="TOML config file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Backtest retraining policies: replay history through the real decision core, retrain
    when each policy says so, trade the champion of each moment after costs, and test whether
    the differences are real. Records one summary event (system.backtest) in the live log."""
    import msgspec

    from autoopt.backtest.policies import parse_policies
    from autoopt.backtest.run import parse_warmup
    from autoopt.runtime import open_plugins

    base = ctx.obj if isinstance(ctx.obj, CliContext) else CliContext()
    cli = CliContext(config_path=config_path or base.config_path, data_dir=base.data_dir,
                     verbose=base.verbose)
    config = cli.config()
    wanted = cli_symbols(symbols) if symbols is not None else None
    try:
        if seed is not None:
            config = msgspec.structs.replace(
                config, pipeline=msgspec.structs.replace(config.pipeline, seed=seed))
        specs = parse_policies(policies, config.policy)
        start_ns = parse_instant(start, "--start") if start is not None else None
        end_ns = parse_instant(end, "--end") if end is not None else None
        if start_ns is not None and end_ns is not None and start_ns >= end_ns:
            raise ConfigError(f"--start {start!r} must be before --end {end!r}")
        if from_log:
            if not wanted or start_ns is None:
                raise ConfigError("--from-log needs --symbols and --start (the period to "
                                  "replay: what if we had used another policy since then?)")
            source = source or "log:" + ",".join(wanted)
            if not source.startswith("log:"):
                raise ConfigError(f"--from-log reads the live log; --source {source!r} "
                                  "must be log:SYMBOLS or left out")
        elif source is None:
            raise ConfigError("--source is required (or --from-log to use the live log)")
        share = parse_warmup(warmup)
        delay = parse_train_delay(train_delay)
        json_out = _output_path(json_path, "--json")
        report_out = _output_path(report_path, "--report")
        plugins = open_plugins(config)
        check_models(plugins, config.pipeline.models, "pipeline.models")
    except AutooptError as exc:
        fail(str(exc))
    assert source is not None
    if from_log:
        run(_run_from_log(config, plugins, wanted or [], specs, start_ns=start_ns,
                          end_ns=end_ns, warmup=share, trials=trials, train_delay_s=delay,
                          jobs=jobs, json_path=json_out, report_path=report_out, quiet=quiet))
        return
    run(_run(config, plugins, source, wanted, specs, start_ns=start_ns, end_ns=end_ns,
             warmup=share, trials=trials, train_delay_s=delay, jobs=jobs, json_path=json_out,
             report_path=report_out, quiet=quiet))


app = typer.Typer(help="Backtest retraining policies.")
app.command("backtest")(backtest)

__all__ = [
    "app",
    "backtest",
    "backtest_and_record",
    "parse_instant",
    "parse_train_delay",
    "print_result",
    "summary_event",
]
