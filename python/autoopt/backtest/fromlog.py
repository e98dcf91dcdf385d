"""`autoopt backtest --from-log`: what if we had used another policy over a recorded period?

The live log already holds the bars, the decisions actually made and the releases actually
promoted. This module reads them back (read-only: nothing is appended) and turns them into

* the bars of each symbol (the `log:` source's reader, validated by the same data layer);
* the champion each symbol had when the period starts, loaded from the live registry and
  verified against the digests its ``ModelReleased`` recorded: every alternative policy starts
  from it, as the live system did;
* the **actual** timeline: each promotion or rollback inside the period (the model that
  traded from then on) plus the retrains decided and the verdicts refused, as markers.

`autoopt.backtest.engine.replay_actual` trades that timeline with the same rule and costs as the
simulated policies, so ``actual`` is compared with them paired on the same bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from autoopt.backtest.result import Marker
from autoopt.backtest.training import Recipe
from autoopt.errors import ArtifactError, DataError
from autoopt.events import (
    DecisionMade,
    ModelPromoted,
    ModelReleased,
    ModelRolledBack,
    ValidationVerdict,
)
from autoopt.pipeline.release import recorded_of
from autoopt.subjects import subject_filter

if TYPE_CHECKING:
    from autoopt.log import EventLog
    from autoopt.registry import ModelRegistry


@dataclass
class Actual:
    """One symbol's recorded history over the period."""

    at_start: Recipe | None = None
    swaps: list[tuple[int, Recipe | None]] = field(default_factory=list)
    """(instant, the model trading from then on; None: a release that could not be loaded)."""
    markers: list[Marker] = field(default_factory=list)


def _recipe(registry: ModelRegistry, symbol: str, released: ModelReleased) -> Recipe:
    manifest, files = registry.load(symbol, released.release_id, recorded=recorded_of(released))
    return Recipe(
        release_id=manifest.release_id, trainer=manifest.trainer or released.trainer,
        model_type=manifest.model_type, params=dict(manifest.params),
        features=list(manifest.features), files=dict(files),
        metrics={k: float(v) for k, v in manifest.metrics.items() if v is not None},
        data_end=int(manifest.data_range.end), sha256=manifest.sha256)


async def read_actual(event_log: EventLog, registry: ModelRegistry, symbol: str,
                      start_ns: int, end_ns: int) -> Actual:
    """The champion at ``start_ns`` and what changed it up to ``end_ns`` (log storage order,
    event times)."""
    released: dict[str, ModelReleased] = {}
    champion: str | None = None
    changes: list[tuple[int, str]] = []
    markers: list[Marker] = []
    async for ev in event_log.replay(subject_filter("model", scope=symbol)):
        if isinstance(ev, ModelReleased):
            released[ev.release_id] = ev
        elif isinstance(ev, ModelPromoted | ModelRolledBack):
            if ev.ts_event < start_ns:
                champion = ev.release_id
            elif ev.ts_event <= end_ns:
                changes.append((ev.ts_event, ev.release_id))
        elif isinstance(ev, ValidationVerdict) and not ev.passed and \
                start_ns <= ev.ts_event <= end_ns:
            markers.append(Marker(ts=ev.ts_event, kind="refusal",
                                  text="; ".join(ev.reasons)[:500]))
    async for ev in event_log.replay(subject_filter("decision", scope=symbol)):
        if isinstance(ev, DecisionMade) and ev.kind == "retrain" and \
                start_ns <= ev.ts_event <= end_ns:
            markers.append(Marker(ts=ev.ts_event, kind="retrain", text=ev.reason))
    out = Actual(markers=markers)

    def load(rid: str) -> Recipe | None:
        ev = released.get(rid)
        if ev is None:
            raise DataError(f"{symbol}: release {rid} was promoted but the log holds no "
                            "ModelReleased for it")
        try:
            return _recipe(registry, symbol, ev)
        except ArtifactError as exc:
            raise DataError(f"{symbol}: release {rid} cannot be used: {exc}") from None

    if champion is not None:
        out.at_start = load(champion)
    for ts, rid in changes:
        recipe = load(rid)
        out.swaps.append((ts, recipe))
        out.markers.append(Marker(ts=ts, kind="release", release_id=rid,
                                  text=f"release {rid} (recorded)"))
    out.markers.sort(key=lambda m: m.ts)
    return out


async def read_period(event_log: EventLog, registry: ModelRegistry, symbols: Sequence[str],
                      source: Any, start_ns: int | None, end_ns: int | None,
                      ) -> tuple[dict[str, pl.DataFrame], dict[str, Actual]]:
    """Bars (from the log source) and the actual history of each symbol over the period; the
    period defaults to the bars' own range."""
    frames = await source.aload("log:" + ",".join(symbols), list(symbols), event_log)
    actual: dict[str, Actual] = {}
    for sym, df in frames.items():
        ts = df["ts"]
        lo = int(ts.min()) if start_ns is None else start_ns
        hi = int(ts.max()) if end_ns is None else end_ns
        actual[sym] = await read_actual(event_log, registry, sym, lo, hi)
    return frames, actual


__all__ = ["Actual", "read_actual", "read_period"]
