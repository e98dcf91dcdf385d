"""``autoopt schema``: the wire contract for engines in any language (see ``docs/wire.md``)."""

from __future__ import annotations

import json

import typer


def schema(
    as_json: bool = typer.Option(False, "--json", help="JSON Schema of every event."),
    markdown: bool = typer.Option(False, "--markdown", help="Reference tables of every event."),
    engine: bool = typer.Option(
        False, "--engine", help="With --markdown: only the engine's types (docs/wire.md)."),
) -> None:
    """Print the events' wire schema: --json (JSON Schema) or --markdown (reference tables);
    without either, one line per event type: tag, subject, stream."""
    from autoopt import wire
    from autoopt.cli.context import fail

    if as_json and markdown:
        fail("schema: --json and --markdown are two forms; give one")
    if engine and not markdown:
        fail("schema: --engine selects the engine's types of --markdown; add --markdown")
    if as_json:
        print(json.dumps(wire.json_schema(), indent=2, sort_keys=True))
        return
    if markdown:
        print(wire.markdown_reference(wire.ENGINE_TYPES if engine else None), end="")
        return
    for name, d in wire.json_schema()["$defs"].items():
        info = d.get("x-autoopt")
        if info is not None:
            print(f"{info['tag']:<24} {info['subject']:<44} {info['stream']:<12} {name}")


__all__ = ["schema"]
