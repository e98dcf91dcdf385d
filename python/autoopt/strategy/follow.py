"""`ParamsWatcher`: what an engine embeds to trade with the current strategy params of a symbol.

It replays the symbol's `RiskParamsUpdated` events to find the latest, then follows new ones
live and swaps its `current` in one reference assignment (a caller reading ``watcher.current``
once per decision always gets one complete `StrategyParams`). A released event (one naming a
``release_id``) is checked against the registry: the release must exist, verify, hash to the
SHA-256 the event recorded and hold the same params; one that does not is refused, the previous
params keep trading, and the refusal is kept in ``errors`` and appended as an `ErrorRaised`. A rollback is just another event, so
the engine follows it without a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from nats.js.api import ConsumerConfig, DeliverPolicy

from autoopt.errors import ArtifactError, AutooptError
from autoopt.events import RiskParamsUpdated, decode
from autoopt.strategy.params import StrategyParams
from autoopt.strategy.release import load_params
from autoopt.subjects import subject_filter_for_type

log = logging.getLogger(__name__)


class ParamsWatcher:
    def __init__(self, symbol: str, *, log: Any, registry: Any,
                 on_change: Callable[[StrategyParams, str], None] | None = None) -> None:
        self.symbol = symbol
        self._log = log
        self._registry = registry
        self._state: tuple[StrategyParams | None, str] = (None, "")
        """(params, release id) in one reference: a reader never sees one without the other."""
        self._on_change = on_change
        self._sub: Any = None
        self._changed = asyncio.Condition()
        self.errors: list[tuple[str, Exception]] = []

    @property
    def current(self) -> StrategyParams | None:
        return self._state[0]

    @property
    def release_id(self) -> str:
        return self._state[1]

    @property
    def state(self) -> tuple[StrategyParams | None, str]:
        """(params, release id) read together (one reference read, never torn by a swap)."""
        return self._state

    async def start(self) -> StrategyParams | None:
        filt = subject_filter_for_type(RiskParamsUpdated, self.symbol)
        last_seq, latest = 0, None
        async for record in self._log.replay_records(filt):
            last_seq = record.seq
            if isinstance(record.event, RiskParamsUpdated):
                latest = record.event
        if latest is not None:
            await self._apply(latest)
        cfg = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                             opt_start_seq=last_seq + 1)
        self._sub = await self._log.js.subscribe(filt, cb=self._on_msg, ordered_consumer=True,
                                                 config=cfg)
        return self.current

    async def _on_msg(self, msg: Any) -> None:
        try:
            event = decode(msg.data)
        except Exception as exc:
            log.error("undecodable params event on %s: %s", msg.subject, exc)
            return
        if isinstance(event, RiskParamsUpdated):
            await self._apply(event)

    def _verify(self, event: RiskParamsUpdated) -> StrategyParams:
        params = StrategyParams.from_dict(dict(event.params))
        if event.release_id:
            found = load_params(self._registry, self.symbol, event.release_id)
            if found is None:
                raise ArtifactError(f"{self.symbol}: params release {event.release_id} not found")
            stored, manifest = found
            if event.sha256 and manifest.sha256 != event.sha256:
                raise ArtifactError(
                    f"{self.symbol}: params release {event.release_id} SHA-256 {manifest.sha256} "
                    f"differs from the {event.sha256} recorded in RiskParamsUpdated")
            if stored != params:
                raise ArtifactError(f"{self.symbol}: params release {event.release_id} holds "
                                    "other params than its RiskParamsUpdated")
        return params

    async def _apply(self, event: RiskParamsUpdated) -> None:
        try:
            params = await asyncio.to_thread(self._verify, event)
        except (AutooptError, OSError) as exc:
            log.error("refused params for %s: %s", self.symbol, exc)
            await self._record_refusal(exc, event)
            self.errors.append((event.release_id, exc))
        else:
            self._state = (params, event.release_id)
            if self._on_change is not None:
                self._on_change(params, event.release_id)
        async with self._changed:
            self._changed.notify_all()

    async def _record_refusal(self, exc: Exception, event: RiskParamsUpdated) -> None:
        """The refusal as an `ErrorRaised` (component ``params-watcher``), where operators
        already watch for a model watcher's refusals; derived id, so each is recorded once."""
        from autoopt.events import ErrorRaised

        try:
            await self._log.append(ErrorRaised.new(
                component="params-watcher", error_type=type(exc).__name__, message=str(exc),
                details={"symbol": self.symbol, "release_id": event.release_id}, cause=event,
                step="params-watcher-refused"))
        except AutooptError as append_exc:
            log.error("could not record the refusal: %s", append_exc)

    async def wait_for(self, release_id: str, timeout: float = 30.0) -> StrategyParams:
        """Wait until the params of ``release_id`` are current (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(lambda: self.release_id == release_id)
        params = self.current
        assert params is not None
        return params

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None


__all__ = ["ParamsWatcher"]
