"""The one code path that makes a release the champion, whoever decides it.

Why: the gate (direct releases), an experiment's conclusion (canary releases, `autoopt ab
conclude`) and any future decider must leave the registry and the log in agreement: ``current``
points at the release and a `ModelPromoted` says so, in that order, so every `ModelWatcher`
(which follows the log) loads what the registry serves. Before, an experiment's promotion only
appended the event.

`promote` verifies the release against what its `ModelReleased` recorded (the log is the
authority; a release the log never recorded is refused with `ArtifactError`), switches
``current`` (atomic symlink or KV swap, skipped when it already points there), then appends the
event unless its id is already stored. Each step is idempotent, so a rerun after a kill between
them completes the promotion.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from autoopt.errors import ArtifactError
from autoopt.events import ModelPromoted, ModelReleased
from autoopt.registry import Recorded
from autoopt.subjects import subject_filter_for_type

if TYPE_CHECKING:
    from autoopt.log import EventLog


async def recorded_release(event_log: EventLog, symbol: str, release_id: str) -> Recorded:
    """What the log's `ModelReleased` of ``release_id`` recorded; ArtifactError when none."""
    found: Recorded | None = None
    async for event in event_log.replay(subject_filter_for_type(ModelReleased, symbol)):
        if isinstance(event, ModelReleased) and event.release_id == release_id:
            found = Recorded(sha256=event.sha256, manifest_sha256=event.manifest_sha256)
    if found is None:
        raise ArtifactError(
            f"{symbol}: release {release_id} has no ModelReleased in the log: an unrecorded "
            "release is never promoted"
        )
    return found


async def promote(
    event_log: EventLog,
    registry: Any,
    event: ModelPromoted,
    *,
    recorded: Recorded | None = None,
    stored_ids: Collection[str] = (),
    after_switch: Callable[[], None] | None = None,
) -> ModelPromoted:
    """Switch ``current`` to ``event.release_id`` (verified), then append ``event`` (skipped
    when its id is in ``stored_ids``); see the module doc. ``after_switch`` runs between the
    two (the release steps' fault point)."""
    symbol, rid = event.symbol, event.release_id
    if recorded is None:
        recorded = await recorded_release(event_log, symbol, rid)
    if registry.current(symbol) != rid:
        registry.set_current(symbol, rid, recorded=recorded)
    if after_switch is not None:
        after_switch()
    if event.event_id not in stored_ids:
        await event_log.append(event)
    return event


__all__ = ["promote", "recorded_release"]
