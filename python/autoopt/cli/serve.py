"""``autoopt serve`` and ``autoopt replay --decisions``."""

from __future__ import annotations

import typer
from rich.markup import escape

from autoopt.cli.context import check_models, console, err_console, fail, run


def serve(
    ctx: typer.Context,
    port: int | None = typer.Option(None, "--port", help="HTTP port for /metrics, /healthz, /readyz."),
    json_logs: bool = typer.Option(True, "--json-logs/--human-logs", help="JSON log lines (default)."),
) -> None:
    """Run the service: consume the log, decide, run retrains, append results."""
    import msgspec

    from autoopt.core.detectors import from_plugins
    from autoopt.errors import AutooptError
    from autoopt.logfmt import setup_logging
    from autoopt.runtime import open_plugins
    from autoopt.service import serve as serve_forever

    cfg = ctx.obj.config()
    if port is not None:
        cfg = msgspec.structs.replace(cfg, service=msgspec.structs.replace(cfg.service, http_port=port))
    plugins = open_plugins(cfg)
    check_models(plugins, cfg.pipeline.models, "pipeline.models")  # before connecting anything
    try:  # the drift detectors the decider will run, with their params
        from_plugins(plugins, cfg)
    except AutooptError as exc:
        fail(str(exc))
    setup_logging(json_lines=json_logs, level="DEBUG" if ctx.obj.verbose else cfg.log.level)
    run(serve_forever(cfg, plugins=plugins))


def replay(
    ctx: typer.Context,
    decisions: bool = typer.Option(True, "--decisions", help="Replay the decision core (the only mode)."),
    other: str | None = typer.Option(None, "--config-b", "--other", help="A second config: show where decisions differ."),
    start: int | None = typer.Option(None, "--from", help="First CORE sequence."),
    end: int | None = typer.Option(None, "--to", help="Last CORE sequence."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the digest."),
    strict: bool = typer.Option(
        False, "--strict", help="Fail on the first CORE record that is not a valid event (default: skip and count it)."
    ),
) -> None:
    """Replay the log through the decision core with the recorded clock; print decisions and digest."""
    from autoopt.config import load_config
    from autoopt.core import describe, diff_decisions, replay_decisions
    from autoopt.core.detectors import from_plugins
    from autoopt.errors import AutooptError
    from autoopt.log.eventlog import ReplayStats
    from autoopt.runtime import open_event_log, open_plugins
    from autoopt.service.core_stream import CORE_STREAM, ensure_core_stream

    if not decisions:
        fail("only --decisions replays are supported")
    cfg = ctx.obj.config()
    plugins = open_plugins(cfg)
    try:  # the streaming drift detectors the service ran: a missing plugin is one line here
        detectors = from_plugins(plugins, cfg)
    except AutooptError as exc:
        fail(str(exc))
    stats = ReplayStats()

    async def read() -> list:
        log = await open_event_log(cfg)
        try:
            await ensure_core_stream(log)
            return [
                (r.event, r.time_ns)
                async for r in log.replay_records(
                    CORE_STREAM, start_seq=start, end_seq=end, strict=strict, stats=stats
                )
            ]
        finally:
            await log.close()

    items = run(read())
    result = replay_decisions(items, cfg, detectors=detectors)
    if not quiet:
        for record in result.decisions:
            for command in record.commands:
                console.print(f"{record.index:>6} {describe(command)}", highlight=False)
        console.print(f"{result.n_events} events, {len(result.decisions)} with decisions: {result.counts()}")
    console.print(f"digest {result.digest}")
    if stats.skipped:
        err_console.print(f"[yellow]{escape(stats.summary(CORE_STREAM))}[/yellow]", highlight=False, soft_wrap=True)
    if result.failed:
        err_console.print(
            f"[yellow]decide raised on {len(result.failed)} event(s), skipped as the service skips "
            f"them; first {result.failed[0]}[/yellow]", highlight=False,
        )
    if other is not None:
        try:
            cfg_b = load_config(other)
            detectors_b = from_plugins(plugins, cfg_b)
        except AutooptError as exc:
            fail(str(exc))
        result_b = replay_decisions(items, cfg_b, detectors=detectors_b)
        diffs = diff_decisions(result, result_b)
        console.print(f"with {other}: digest {result_b.digest}; {len(diffs)} differences")
        for d in diffs:
            console.print(f"  #{d.index} {d.event_type} {d.event_id}: {d.explanation}", highlight=False)
