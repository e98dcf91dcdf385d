"""``autoopt ab create|start|pause|list|status|conclude``: A/B experiments from the command line.

Every verb reads the experiments and outcomes back from the event log (the projection is
rebuilt by replay) and writes lifecycle changes as events, so the CLI, the router and the
supervisor always agree.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import msgspec
import typer
from rich.table import Table

from autoopt.cli.context import CliContext, cli_symbol, console, fail, run
from autoopt.errors import ConfigError

app = typer.Typer(help="A/B experiments: define, run, watch, conclude.", no_args_is_help=True)


def _cli(ctx: typer.Context) -> CliContext:
    return ctx.obj if isinstance(ctx.obj, CliContext) else CliContext()


def _value(raw: str) -> Any:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw


def parse_variant(text: str) -> Any:
    """``name:release:weight[:key=value,key=value]`` → VariantSpec (values parsed as JSON)."""
    from autoopt.events import VariantSpec

    parts = text.split(":", 3)
    if len(parts) < 3:
        raise ConfigError(
            f"--variant {text!r}: expected name:release:weight[:key=value,...], e.g. "
            "'chal:r2:0.5:confidence_threshold=0.7'"
        )
    name, release, weight = parts[:3]
    try:
        w = float(weight)
    except ValueError:
        raise ConfigError(f"--variant {text!r}: weight {weight!r} is not a number") from None
    config: dict[str, Any] = {}
    if len(parts) == 4 and parts[3]:
        for item in parts[3].split(","):
            key, eq, val = item.partition("=")
            if not eq or not key:
                raise ConfigError(f"--variant {text!r}: config item {item!r} is not key=value")
            config[key] = _value(val)
    return VariantSpec(name=name, release_id=release, weight=w, config=config)


def parse_guardrails(items: list[str]) -> Any:
    from autoopt.ab.experiments import Guardrails

    raw: dict[str, float] = {}
    for item in items:
        key, eq, val = item.partition("=")
        try:
            raw[key] = float(val)
        except ValueError:
            raise ConfigError(f"--guardrail {item!r}: expected key=number") from None
        if not eq:
            raise ConfigError(f"--guardrail {item!r}: expected key=number")
    if "max_loss_streak" in raw:
        raw["max_loss_streak"] = int(raw["max_loss_streak"])  # type: ignore[assignment]
    if "min_routed" in raw:
        raw["min_routed"] = int(raw["min_routed"])  # type: ignore[assignment]
    return Guardrails.from_dict(raw)


@app.command()
def create(
    ctx: typer.Context,
    variant: Annotated[
        list[str],
        typer.Option(
            "--variant", "-V", help="name:release:weight[:key=value,...]; the first is champion."
        ),
    ],
    name: str = typer.Argument(..., help="Experiment name (unique, forever)."),
    symbol: str = typer.Option(..., "--symbol", "-s", help="Symbol, or '*' for every symbol."),
    hypothesis: str = typer.Option("", "--hypothesis", help="What you expect and why."),
    unit: str = typer.Option("signal_id", "--unit", help="signal_id, symbol or account."),
    coverage: float = typer.Option(1.0, "--coverage", help="Share of units in the experiment."),
    guardrail: Annotated[
        list[str] | None,
        typer.Option(
            "--guardrail", "-g", help="max_drawdown=0.1, max_loss_streak=8, max_error_rate=0.05"
        ),
    ] = None,
    min_samples: int = typer.Option(30, "--min-samples", help="Trades per variant first."),
    max_duration: float = typer.Option(0.0, "--max-duration", help="Seconds (0: no limit)."),
    alpha: float = typer.Option(0.05, "--alpha"),
    champion: str = typer.Option("", "--champion", help="Control variant (default: first)."),
    shadow: bool = typer.Option(False, "--shadow", help="Challengers trade on paper only."),
    auto: bool = typer.Option(False, "--auto", help="Apply decisions, not just recommend."),
    tuning: float = typer.Option(5000.0, "--tuning", help="mSPRT tuning: expected total trades."),
    seed: str = typer.Option("", "--seed", help="Assignment seed (default: the name)."),
    plugin_key: Annotated[
        list[str] | None,
        typer.Option("--plugin-key", help="Variant config key a plugin understands (repeatable)."),
    ] = None,
    start: bool = typer.Option(False, "--start", help="Start it right away."),
) -> None:
    """Define an experiment (recorded as ExperimentCreated)."""
    from autoopt.ab.experiments import ExperimentService, ExperimentSpec
    from autoopt.runtime import open_event_log

    keys = plugin_key or []
    symbol = cli_symbol(symbol, "--symbol", allow_all=True)
    try:
        spec = ExperimentSpec(
            name=name,
            symbol=symbol,
            variants=[parse_variant(v) for v in variant],
            hypothesis=hypothesis,
            unit=unit,
            coverage=coverage,
            guardrails=parse_guardrails(guardrail or []),
            min_samples=min_samples,
            max_duration_s=max_duration,
            alpha=alpha,
            champion=champion,
            shadow=shadow,
            auto_decide=auto,
            sequential_tuning=tuning,
            seed=seed,
        )
        spec.validate(keys)
    except ConfigError as exc:
        fail(str(exc))
    check_releases(_cli(ctx).config(), symbol, [(v.name, v.release_id) for v in spec.variants])

    async def go() -> None:
        log = await open_event_log(_cli(ctx).config())
        try:
            svc = await ExperimentService.open(log, declared_keys=keys)
            await svc.create(spec)
            if start:
                await svc.start(name)
        finally:
            await log.close()

    run(go())
    console.print(f"experiment [bold]{name}[/bold] created" + (" and started" if start else ""))


def check_releases(config: Any, symbol: str, variants: list[tuple[str, str]]) -> None:
    """Exit with one line naming the first variant whose release is not in the registry (of
    ``symbol``; of any symbol for ``*``), before anything is recorded: an experiment on a
    release that does not exist would route live signals to nothing."""
    from autoopt.errors import AutooptError
    from autoopt.registry import open_registry
    from autoopt.symbols import ALL_SYMBOLS

    registry = open_registry(config)
    try:
        symbols = registry.symbols() if symbol == ALL_SYMBOLS else [symbol]
        for name, release_id in variants:
            why = "the registry has no releases" if not symbols else ""
            for sym in symbols:
                try:
                    registry.manifest(sym, release_id)
                    break
                except AutooptError as exc:
                    why = str(exc)
            else:
                where = f"of {symbol}" if symbol != ALL_SYMBOLS else "of any symbol"
                fail(f"variant {name!r}: release {release_id!r} {where} is not in the registry "
                     f"({why}); `autoopt releases list` shows the releases")
    finally:
        registry.close()


def _lifecycle(ctx: typer.Context, name: str, verb: str, reason: str) -> None:
    from autoopt.ab.experiments import ExperimentService
    from autoopt.runtime import open_event_log

    async def go() -> None:
        log = await open_event_log(_cli(ctx).config())
        try:
            svc = await ExperimentService.open(log)
            await getattr(svc, verb)(name, reason)
        finally:
            await log.close()

    run(go())
    console.print(f"experiment [bold]{name}[/bold] {verb}{'p' if verb == 'pause' else ''}ed")


@app.command()
def start(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    reason: str = typer.Option("", "--reason"),
) -> None:
    """Start (or resume) an experiment: the router begins sending it traffic."""
    _lifecycle(ctx, name, "start", reason)


@app.command()
def pause(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    reason: str = typer.Option("", "--reason"),
) -> None:
    """Pause an experiment: its symbols' signals pass through unchanged."""
    _lifecycle(ctx, name, "pause", reason)


@app.command("list")
def list_experiments(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Every experiment with its status, variants and winner."""
    from autoopt.ab.experiments import ExperimentBook
    from autoopt.runtime import open_event_log

    async def go() -> list[dict[str, Any]]:
        log = await open_event_log(_cli(ctx).config())
        try:
            book = await ExperimentBook.rebuild(log)
        finally:
            await log.close()
        return [e.summary() for e in book.experiments.values()]

    rows = run(go())
    if as_json:
        console.print_json(msgspec.json.encode(rows).decode())
        return
    table = Table(title="experiments")
    for col in ("name", "symbol", "status", "unit", "variants", "winner", "hypothesis"):
        table.add_column(col)
    for r in rows:
        variants = ", ".join(
            f"{v['name']}{'*' if v['name'] == r['champion'] else ''}={v['weight']:g}"
            for v in r["variants"]
        )
        table.add_row(
            r["name"], r["symbol"], r["status"], r["unit"], variants, r["winner"] or "-",
            r["hypothesis"],
        )  # fmt: skip
    console.print(table)


def _f(value: Any, spec: str = ".4g") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return format(value, spec)


async def _analysis(ctx: typer.Context, name: str) -> tuple[Any, Any, Any]:
    from autoopt.ab.decision import decide
    from autoopt.ab.experiments import ExperimentBook
    from autoopt.ab.tracking import OutcomeTracker
    from autoopt.clock import SystemClock
    from autoopt.runtime import open_event_log

    log = await open_event_log(_cli(ctx).config())
    try:
        book = await ExperimentBook.rebuild(log)
        exp = book.get(name)
        tracker = await OutcomeTracker.rebuild(log)
    finally:
        await log.close()
    return book, exp, decide(exp, tracker, SystemClock().now_ns())


@app.command()
def status(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Per-variant running statistics, every test, and what the rules would decide now."""
    _, exp, d = run(_analysis(ctx, name))
    st = d.statistics
    if as_json:
        out = {"experiment": exp.summary(), "decision": msgspec.to_builtins(d)}
        console.print_json(msgspec.json.encode(out).decode())
        return
    console.print(
        f"[bold]{exp.name}[/bold] on {exp.symbol}: {exp.status}, unit {exp.unit}, champion "
        f"{exp.champion}{', shadow' if exp.shadow else ''}"
        + (f", winner {exp.winner}" if exp.winner else "")
    )
    table = Table(title="variants")
    cols = ("variant", "routed", "trades", "mean", "sd", "sharpe", "pnl", "max dd", "loss streak")
    for col in (*cols, "errors"):
        table.add_column(col, justify="right")
    for v in exp.variants:
        s = st["variants"][v.name]
        table.add_row(
            v.name + ("*" if v.name == exp.champion else ""), str(s["routed"]), str(s["n"]),
            _f(s["mean"]), _f(s["sd"]), _f(s["sharpe"], ".3f"), _f(s["pnl"], ".2f"),
            _f(s["max_drawdown"]), str(s["max_loss_streak"]),
            f"{s['errors']} ({s['error_rate']:.1%})",
        )  # fmt: skip
    console.print(table)
    tests = Table(title=f"challenger vs {exp.champion} (alpha {st['alpha_per_challenger']:.3g})")
    for col in ("challenger", "test", "estimate", "interval", "p"):
        tests.add_column(col, justify="right")
    for v, c in st["comparisons"].items():
        rows = []
        if c["welch"]:
            w = c["welch"]
            rows.append(("Welch t", w["diff"], (w["ci_low"], w["ci_high"]), w["p_value"]))
        if c["mann_whitney"]:
            m = c["mann_whitney"]
            rows.append(("Mann-Whitney U", m["prob_superiority"], None, m["p_value"]))
        if c["sharpe_ci"]:
            b = c["sharpe_ci"]
            rows.append(("Sharpe diff (bootstrap)", b["diff"], (b["ci_low"], b["ci_high"]), None))
        if c["sequential"]:
            q = c["sequential"]
            rows.append(
                ("mSPRT (always valid)", q["diff"], (q["ci_low"], q["ci_high"]), q["p_value"])
            )
        if c["jobson_korkie"]:
            j = c["jobson_korkie"]
            rows.append(("Jobson-Korkie-Memmel", j["diff"], None, j["p_value"]))
        if not rows:
            rows.append(("(too few trades)", None, None, None))
        for test, est, ci, p in rows:
            interval = f"[{_f(ci[0])}, {_f(ci[1])}]" if ci else "-"
            tests.add_row(v, test, _f(est), interval, _f(p))
    console.print(tests)
    srm = st["srm"]
    if srm is not None:
        flag = "[bold red]MISMATCH[/bold red]" if srm["mismatch"] else "ok"
        console.print(f"sample ratio: {srm['observed']} p={srm['p_value']:.3g} {flag}")
    console.print(f"decision now: [bold]{d.action}[/bold] {d.variant or ''} — {d.reason}")


@app.command()
def conclude(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    winner: str | None = typer.Option(None, "--winner", "-w", help="Winning variant (or none)."),
    reason: str = typer.Option("operator", "--reason"),
) -> None:
    """End an experiment, recording the current statistics with the outcome. A winner whose
    release differs from the champion's is promoted on a concrete symbol: registry ``current``
    switched, then ModelPromoted (the one promotion path, `autoopt.promotion`); a release that
    cannot be promoted (never recorded, files missing or altered) is refused before anything
    is written."""
    from autoopt.ab.decision import check_promotable, conclude_and_promote
    from autoopt.ab.experiments import ExperimentService
    from autoopt.errors import ArtifactError
    from autoopt.registry import open_registry
    from autoopt.runtime import open_event_log

    _, exp, d = run(_analysis(ctx, name))

    async def go() -> list[str]:
        config = _cli(ctx).config()
        log = await open_event_log(config)
        try:
            svc = await ExperimentService.open(log)
            registry = open_registry(config)
            _, refused = await check_promotable(log, registry, svc.book.get(name), winner or None)
            if refused is not None:
                raise ArtifactError(f"experiment {name}: winner {winner!r}: {refused}")
            written = await conclude_and_promote(svc, registry, name, winner or None, reason,
                                                 d.statistics)
            return [type(ev).__name__ for ev in written]
        finally:
            await log.close()

    written = run(go())
    console.print(f"experiment [bold]{name}[/bold] concluded ({', '.join(written)})")
