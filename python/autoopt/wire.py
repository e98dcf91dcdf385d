"""The wire contract, generated from the event structs: JSON Schema and the reference tables of
``docs/wire.md``, so the document an engine in another language reads cannot drift from the code.

`json_schema` is what ``autoopt schema --json`` prints: one JSON Schema document whose
``anyOf`` lists every event type (``$defs`` by class name), with ``x-autoopt`` holding each
type's tag, scope field, subject pattern and stream. `markdown_reference` is the generated part
of ``docs/wire.md`` (between its ``<!-- generated -->`` markers; ``autoopt schema --markdown``
prints it and a test checks the document holds the current one).
"""

from __future__ import annotations

from typing import Any

import msgspec

from autoopt.events import ALL_EVENT_TYPES, AnyEvent, Event
from autoopt.subjects import PREFIX, stream_name_for

BEGIN = "<!-- generated: autoopt schema --markdown -->"
END = "<!-- end generated -->"


def _type_info(t: type[Event]) -> dict[str, str]:
    category, kind = t.type_tag().split(".", 1)
    return {
        "tag": t.type_tag(),
        "scope_field": t.scope_field,
        "subject": f"{PREFIX}.{category}.{kind}.<{t.scope_field}>",
        "stream": stream_name_for(t),
    }


def json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of every event, with each type's tag, subject and stream."""
    (union,), defs = msgspec.json.schema_components([AnyEvent], ref_template="#/$defs/{name}")
    for t in ALL_EVENT_TYPES:
        defs[t.__name__]["x-autoopt"] = _type_info(t)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "autoopt events",
        "description": (
            "Every event autoopt records. On the wire each is a msgpack map: the 'type' tag "
            "plus its fields by name; bytes fields are msgpack bin (base64 strings only in "
            "this JSON rendering); timestamps are int64 Unix nanoseconds."
        ),
        **union,
        "$defs": defs,
    }


def _type_name(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " \\| ".join(_type_name(s) for s in schema["anyOf"])
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    t = schema.get("type", "any")
    if t == "string" and schema.get("contentEncoding") == "base64":
        return "bytes"
    if t == "array":
        return f"array of {_type_name(schema.get('items', {}))}"
    if t == "object" and "additionalProperties" in schema:
        return f"map of {_type_name(schema['additionalProperties'])}"
    return {"integer": "int", "number": "float", "string": "str", "boolean": "bool",
            "null": "nil", "object": "map"}.get(t, str(t))


def _first_line(text: str) -> str:
    return " ".join(text.strip().split("\n\n")[0].split())


ENGINE_TYPES: tuple[type[Event], ...] = tuple(
    t for t in ALL_EVENT_TYPES if t.type_tag() in (
        "market.bars", "market.features", "signal.emitted", "signal.routed", "trade.fill",
        "trade.outcome", "metrics.reported", "training.requested", "model.released",
        "model.promoted", "model.rolled_back", "model.canary", "risk.params_updated",
    ))
"""The types an engine writes or reads: their tables are in ``docs/wire.md`` (the rest:
``autoopt schema --markdown``)."""


def markdown_reference(types: tuple[type[Event], ...] | None = None) -> str:
    """Reference tables, one section per event type (all types, or ``types``), plus the
    structs nested in them."""
    schema = json_schema()
    defs = schema["$defs"]
    out = [BEGIN, ""]
    chosen = ALL_EVENT_TYPES if types is None else types
    for t in chosen:
        d = defs[t.__name__]
        info = d["x-autoopt"]
        out += [f"### `{info['tag']}` — {t.__name__}", "",
                _first_line(d.get("description", "")), "",
                f"Subject `{info['subject']}`, stream `{info['stream']}`.", "",
                "| field | type | required | default |", "|---|---|---|---|"]
        required = set(d.get("required", []))
        for name, prop in d["properties"].items():
            if name == "type":
                continue
            default = "" if name in required else f"`{msgspec.json.encode(prop.get('default')).decode()}`"
            out.append(f"| `{name}` | {_type_name(prop)} | {'yes' if name in required else ''} "
                       f"| {default} |")
        out.append("")
    nested = sorted(set(defs) - {t.__name__ for t in ALL_EVENT_TYPES}) if types is None else []
    for name in nested:
        d = defs[name]
        out += [f"### {name} (inside events)", "", _first_line(d.get("description", "")), "",
                "| field | type | required | default |", "|---|---|---|---|"]
        required = set(d.get("required", []))
        for fname, prop in d["properties"].items():
            default = "" if fname in required else f"`{msgspec.json.encode(prop.get('default')).decode()}`"
            out.append(f"| `{fname}` | {_type_name(prop)} | {'yes' if fname in required else ''} "
                       f"| {default} |")
        out.append("")
    out.append(END)
    return "\n".join(out) + "\n"


__all__ = ["BEGIN", "END", "ENGINE_TYPES", "json_schema", "markdown_reference"]
