"""``autoopt log info|tail|replay``: look into the event log."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import typer
from rich.markup import escape
from rich.table import Table

from autoopt.cli.context import console, fail, run
from autoopt.cli.render import line

app = typer.Typer(help="Inspect the event log (NATS JetStream).", no_args_is_help=True)


def _bound(value: str | None, name: str) -> tuple[int | None, dt.datetime | None]:
    """A ``--from``/``--to`` value: a sequence number, or an ISO-8601 time (UTC if naive)."""
    if value is None:
        return None, None
    if value.isdigit():
        return int(value), None
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(f"{name} {value!r} is neither a sequence number nor an ISO-8601 time")
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return None, stamp


@app.command()
def info(ctx: typer.Context) -> None:
    """Streams with their message counts, sizes and sequence ranges."""
    from autoopt.runtime import open_event_log

    async def go() -> None:
        log = await open_event_log(ctx.obj.config())
        try:
            stats = await log.info()
            changes = await log.ensure_streams()  # compares only; creates what is missing
            url = log.url
        finally:
            await log.close()
        table = Table(title=f"autoopt event log at {url}")
        for col in ("stream", "subjects", "messages", "bytes", "seq range", "consumers", "max age"):
            table.add_column(col)
        for s in stats:
            age = f"{s.max_age_s / 86400:g}d" if s.max_age_s else "forever"
            seqs = f"{s.first_seq}-{s.last_seq}" if s.messages else "-"
            table.add_row(
                s.name, ",".join(s.subjects), str(s.messages), f"{s.bytes:,}", seqs,
                str(s.consumers), age,
            )
        console.print(table)
        _print_differences(changes)

    run(go())


def _print_differences(changes: list) -> None:  # list[StreamChange]
    for change in changes:
        for d in change.differences:
            console.print(f"[yellow]{escape(d.describe(change.name))}[/yellow]", soft_wrap=True)


@app.command()
def streams(
    ctx: typer.Context,
    apply: bool = typer.Option(
        False, "--apply", help="Apply the safe differences (never fewer replicas, never another "
        "storage or retention policy, never dropped subjects)."
    ),
) -> None:
    """Compare the existing streams (CORE included) with the config; report each difference."""
    from nats.js.errors import NotFoundError

    from autoopt.log.streams import reconcile
    from autoopt.runtime import open_event_log
    from autoopt.service.core_stream import CORE_STREAM, core_stream_config

    async def go() -> list:
        log = await open_event_log(ctx.obj.config())
        try:
            changes = await log.ensure_streams(apply=apply)
            with contextlib.suppress(NotFoundError):
                await log.js.stream_info(CORE_STREAM)  # CORE is the service's to create
                changes.append(
                    await reconcile(log.js, core_stream_config(log.settings.replicas), apply=apply)
                )
        finally:
            await log.close()
        return changes

    changes = run(go())
    for change in changes:
        console.print(f"{change.name}: {change.action}", highlight=False)
    _print_differences(changes)


@app.command()
def replay(
    ctx: typer.Context,
    target: str = typer.Option(
        "", "--subject", "-s", help="Stream name (MODELS) or subject filter (autoopt.model.*.GOOG); default all streams."
    ),
    start: str | None = typer.Option(None, "--from", help="First sequence number or ISO time (inclusive)."),
    end: str | None = typer.Option(None, "--to", help="Last sequence number or ISO time (inclusive)."),
    limit: int = typer.Option(0, "--limit", "-n", help="Stop after this many events (0: no limit)."),
) -> None:
    """Print decoded events by sequence range or time range."""
    from autoopt.runtime import open_event_log
    from autoopt.subjects import STREAMS

    start_seq, start_time = _bound(start, "--from")
    end_seq, end_time = _bound(end, "--to")

    async def go() -> int:
        log = await open_event_log(ctx.obj.config())
        shown = 0
        try:
            targets = [target] if target else [s.name for s in STREAMS]
            for t in targets:
                async for record in log.replay_records(
                    t, start_seq=start_seq, end_seq=end_seq, start_time=start_time, end_time=end_time
                ):
                    console.print(line(record.event, record.seq), highlight=False, soft_wrap=True)
                    shown += 1
                    if limit and shown >= limit:
                        return shown
        finally:
            await log.close()
        return shown

    shown = run(go())
    console.print(f"[dim]{shown} events[/dim]")


@app.command()
def tail(
    ctx: typer.Context,
    subject: str = typer.Option("autoopt.>", "--subject", "-s", help="Subject filter to follow."),
    count: int = typer.Option(0, "--count", "-n", help="Exit after this many events (0: until Ctrl-C)."),
    timeout: float = typer.Option(0.0, "--timeout", help="Exit after this many idle seconds (0: never)."),
) -> None:
    """Follow new events live as they are appended."""
    from autoopt.events import decode
    from autoopt.runtime import open_event_log

    async def go() -> int:
        log = await open_event_log(ctx.obj.config())
        seen = 0
        done = asyncio.Event()
        try:
            async def on_msg(msg) -> None:  # noqa: ANN001 - nats Msg
                nonlocal seen
                try:
                    event = decode(msg.data)
                except Exception as exc:  # show, never hide, an undecodable message
                    console.print(f"[red]undecodable message on {escape(msg.subject)}: {exc}[/red]")
                    return
                console.print(line(event), highlight=False, soft_wrap=True)
                seen += 1
                if count and seen >= count:
                    done.set()

            sub = await log.nc.subscribe(subject, cb=on_msg)
            console.print(f"[dim]following {subject} on {log.url} (Ctrl-C to stop)[/dim]")
            try:
                if timeout:
                    while True:
                        before = seen
                        try:
                            await asyncio.wait_for(done.wait(), timeout)
                            break
                        except TimeoutError:
                            if seen == before:
                                break
                else:
                    await done.wait()
            finally:
                await sub.unsubscribe()
        finally:
            await log.close()
        return seen

    try:
        seen = run(go())
    except KeyboardInterrupt:
        return
    console.print(f"[dim]{seen} events[/dim]")
