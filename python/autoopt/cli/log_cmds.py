"""``autoopt log info|tail|replay|dead-letters``: look into the event log."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from autoopt.cli.context import cli_symbol, console, err_console, fail, run
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
    strict: bool = typer.Option(
        False, "--strict", help="Fail on the first record that is not a valid event (default: skip and count it)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON object per line: the whole event (bytes as base64) with its seq, subject and storage time."
    ),
    types: str | None = typer.Option(
        None, "--type", "-t", help="Only these event types, comma-separated: tags (model.released), categories (model) or class names."
    ),
    symbol: str | None = typer.Option(None, "--symbol", help="Only events of this symbol."),
    since: str | None = typer.Option(
        None, "--since", help="Only events stored since this long ago (90s, 10m, 2h, 7d) or this ISO time."
    ),
) -> None:
    """Print decoded events by sequence range or time range; long events wrap, never cut."""
    import time

    from autoopt.errors import AutooptError
    from autoopt.log.eventlog import ReplayStats
    from autoopt.logquery import matches, parse_since, parse_types, replay_targets, target_name
    from autoopt.runtime import open_event_log

    start_seq, start_time = _bound(start, "--from")
    end_seq, end_time = _bound(end, "--to")
    try:
        wanted = parse_types(types)
        since_ns = parse_since(since, time.time_ns())
    except AutooptError as exc:
        fail(str(exc))
    if since_ns is not None:
        if start is not None:
            fail("give --from or --since, not both")
        start_time = dt.datetime.fromtimestamp(since_ns / 1e9, tz=dt.UTC)
    if target and (wanted or symbol is not None):
        fail("--subject selects on its own: combine --type/--symbol with each other, not with --subject")
    if symbol is not None:
        symbol = cli_symbol(symbol, "--symbol")
    skipped: list[tuple[str, ReplayStats]] = []

    def show(record) -> None:  # noqa: ANN001 - Record
        if as_json:
            typer.echo(json_line(record))
        else:
            console.print(line(record.event, record.seq), highlight=False)

    async def go() -> int:
        log = await open_event_log(ctx.obj.config())
        shown = 0
        try:
            targets = [target] if target else replay_targets(wanted, symbol)
            for t in targets:
                stats = ReplayStats()
                skipped.append((target_name(t), stats))
                async for record in log.replay_records(
                    t, start_seq=start_seq, end_seq=end_seq, start_time=start_time, end_time=end_time,
                    strict=strict, stats=stats,
                ):
                    if not matches(record.event, symbol):
                        continue
                    show(record)
                    shown += 1
                    if limit and shown >= limit:
                        return shown
        finally:
            await log.close()
        return shown

    shown = run(go())
    out = err_console if as_json else console  # --json keeps stdout pure JSON lines
    out.print(f"[dim]{shown} events[/dim]")
    for t, stats in skipped:
        if stats.skipped:
            out.print(f"[yellow]{escape(stats.summary(t))}[/yellow]", highlight=False, soft_wrap=True)


def json_line(record) -> str:  # noqa: ANN001 - Record
    """A replayed record as one JSON object: ``seq``, ``subject``, ``stored`` (ISO time the log
    stored it) and ``event`` (every field, ``type`` its tag; bytes as base64, NaN as null)."""
    import msgspec

    from autoopt.cli.render import fmt_ns

    return msgspec.json.encode({
        "seq": record.seq, "subject": record.subject, "stored": fmt_ns(record.time_ns),
        "event": record.event,
    }).decode()


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


def _letter_row(record) -> dict:  # noqa: ANN001 - Record of a DeadLettered
    """One dead letter as a JSON-able map: the payload as base64 plus a best-effort view."""
    import base64

    from autoopt.log.deadletter import payload_view

    letter = record.event
    return {
        "seq": record.seq,
        "time_ns": record.time_ns,
        "event_id": letter.event_id,
        "stream": letter.stream,
        "origin_seq": letter.seq,
        "subject": letter.subject,
        "consumer": letter.consumer,
        "deliveries": letter.deliveries,
        "error": letter.error,
        "headers": letter.headers,
        "payload_b64": base64.b64encode(letter.payload).decode(),
        "decoded": payload_view(letter.payload),
    }


_SET_OPTION = typer.Option(
    None, "--set", metavar="FIELD=VALUE", help="With --resubmit: set a field (value parsed as JSON if it parses)."
)


@app.command("dead-letters")
def dead_letters(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per letter."),
    stream: str | None = typer.Option(None, "--stream", help="Only letters of messages from this stream (CORE, SIGNALS...)."),
    limit: int = typer.Option(50, "--limit", "-n", help="Show the latest N letters (0: all)."),
    resubmit: int | None = typer.Option(
        None, "--resubmit", metavar="SEQ", help="Append a corrected copy of the letter at this DEADLETTER sequence."
    ),
    assignments: list[str] | None = _SET_OPTION,
    with_file: str | None = typer.Option(
        None, "--with", metavar="FILE.json", help="With --resubmit: a JSON map of fields to set."
    ),
) -> None:
    """List what consumers refused (raw payload, origin, reason), or resubmit one corrected.

    A resubmitted event is validated as its event type, gets an id derived from the letter (a
    repeated resubmit is stored once) and the letter's id as its causation_id."""
    import collections
    import json

    from autoopt.errors import AutooptError
    from autoopt.log.deadletter import parse_assignment
    from autoopt.runtime import open_event_log
    from autoopt.subjects import deadletter_subject

    assignments = assignments or []
    if resubmit is None and (assignments or with_file):
        fail("--set and --with need --resubmit SEQ")
    if resubmit is not None:
        patch: dict = {}
        if with_file is not None:
            try:
                loaded = json.loads(Path(with_file).read_text())
            except (OSError, ValueError) as exc:
                fail(f"--with {with_file}: {exc}")
            if not isinstance(loaded, dict):
                fail(f"--with {with_file}: expected a JSON object of fields, got {type(loaded).__name__}")
            patch.update(loaded)
        try:
            patch.update(parse_assignment(a) for a in assignments)
        except AutooptError as exc:
            fail(str(exc))
        _resubmit(ctx, resubmit, patch)
        return

    target = deadletter_subject(stream) if stream else "DEADLETTER"

    async def go() -> list:
        log = await open_event_log(ctx.obj.config())
        try:
            kept: collections.deque = collections.deque(maxlen=limit or None)
            async for record in log.replay_records(target):
                kept.append(record)
            return list(kept)
        finally:
            await log.close()

    records = run(go())
    if as_json:
        for record in records:
            typer.echo(json.dumps(_letter_row(record)))
        return
    table = Table(title=f"dead letters ({len(records)} shown)")
    for col in ("seq", "stored", "origin", "subject", "consumer", "tries", "bytes", "reason"):
        table.add_column(col)
    for record in records:
        letter = record.event
        stored = dt.datetime.fromtimestamp(record.time_ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            str(record.seq), stored, f"{letter.stream}/{letter.seq}", escape(letter.subject),
            escape(letter.consumer), str(letter.deliveries), str(len(letter.payload)),
            escape(letter.error),
        )
    console.print(table)


def _resubmit(ctx: typer.Context, seq: int, patch: dict) -> None:
    """Append the corrected copy of the letter at DEADLETTER ``seq`` (once)."""
    from autoopt.events import DeadLettered
    from autoopt.log.deadletter import corrected_event
    from autoopt.runtime import open_event_log
    from autoopt.subjects import subject_for

    async def go() -> tuple[str, str]:
        log = await open_event_log(ctx.obj.config())
        try:
            letter = None
            async for record in log.replay_records("DEADLETTER", start_seq=seq, end_seq=seq):
                letter = record.event
            if not isinstance(letter, DeadLettered):
                fail(f"no dead letter at DEADLETTER sequence {seq} (see autoopt log dead-letters)")
            event = corrected_event(letter, patch)
            subject = subject_for(event)
            async for stored in log.replay_records(subject):
                if stored.event.event_id == event.event_id:  # beyond the dedup window too
                    return "already", f"{stored.subject} seq {stored.seq}"
            result = await log.append(event)
            where = f"{result.stream} seq {result.seq}"
            return ("already" if result.duplicate else "stored"), where
        finally:
            await log.close()

    outcome, where = run(go())
    if outcome == "already":
        console.print(f"letter {seq} was already resubmitted ({where})", highlight=False)
    else:
        console.print(f"resubmitted letter {seq} as {where}", highlight=False)
