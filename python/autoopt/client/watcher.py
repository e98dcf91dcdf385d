"""What a trading engine embeds to follow the champion model of a symbol and predict with it.

Open one with ``watcher = await ModelWatcher.open(symbol, config)``. It replays the symbol's
model events to find the current champion, loads it from the registry, then follows new
`ModelPromoted` / `ModelRolledBack` events live and swaps the loaded model in one reference
assignment, so a caller's ``watcher.current`` is always a complete model, never a half-loaded one.

Loading checks the release against what the log recorded for it (its ``ModelReleased``: the
artifact-set and ``manifest.json`` SHA-256, the DESIGN's authority), and the registry re-derives
the release id from the manifest, so editing any file or manifest field is refused. The trainer
that loads it is the one the release recorded (`Plugins.release_trainer`). A refused release
(tampered, missing, never recorded as released) leaves the previous model serving; the refusal is
appended to the log as an `ErrorRaised` event of component ``model-watcher`` (operators already
watch the SYSTEM stream for those) and passed to ``on_error``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from nats.js.api import ConsumerConfig, DeliverPolicy

from autoopt.client.champion import Bars, ReleaseFeatures
from autoopt.config import Config
from autoopt.errors import ArtifactError, AutooptError, DataError
from autoopt.events import (
    ErrorRaised,
    Event,
    ModelPromoted,
    ModelReleased,
    ModelRolledBack,
    decode,
)
from autoopt.log import EventLog
from autoopt.plugins import Plugins
from autoopt.plugins.interfaces import lookback_of
from autoopt.registry import Manifest, ModelRegistry, Recorded, open_registry
from autoopt.subjects import subject_filter

if TYPE_CHECKING:
    from autoopt.strategy.follow import ParamsWatcher
    from autoopt.strategy.params import StrategyParams

log = logging.getLogger(__name__)

SwapCallback = Callable[["LoadedModel", "LoadedModel | None"], Awaitable[None] | None]
ErrorCallback = Callable[[Exception, Event], Awaitable[None] | None]


@dataclass(frozen=True)
class LoadedModel:
    """A verified, loaded release: what `ModelWatcher.current` hands out."""

    symbol: str
    release_id: str
    manifest: Manifest
    predictor: Any
    event_id: str
    features: ReleaseFeatures | None = None
    """The release's own feature set (None: its manifest recorded none)."""
    params: StrategyParams | None = None
    """The symbol's current strategy params (a watcher opened with ``follow_params``; None
    otherwise or before any release). A params release or rollback swaps in a new champion
    holding the same model and the new params, so one read of ``watcher.current`` gives a model
    and params that were current together."""
    params_release_id: str = ""
    """The params release ``params`` came from ("" when none)."""

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest.features)

    @property
    def lookback(self) -> int:
        """Rows one prediction reads (1 for row models; a sequence model's window): pass at
        least the last ``lookback`` feature rows so the newest prediction sees its history."""
        return lookback_of(self.predictor)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.predictor.predict_proba(X)

    def _features(self) -> ReleaseFeatures:
        if self.features is None:
            raise ArtifactError(
                f"{self.symbol}/{self.release_id}: the manifest records no feature set (released "
                "before it was recorded): pass feature rows to predict_proba"
            )
        return self.features

    def predict(self, bars: Bars) -> np.ndarray:
        """P(up) for every bar, from raw bars through the release's own features (NaN in the
        feature set's warm-up rows)."""
        feats = self._features()
        X = feats.matrix(bars)
        out = np.full(X.shape[0], np.nan)
        ok = ~np.isnan(X).any(axis=1)
        ok[: feats.warmup] = False  # the pipeline never trains or validates on warm-up rows
        if ok.any():
            out[ok] = self.predictor.predict_proba(X[ok])
        return out

    def predict_latest(self, window: Bars) -> float:
        """P(up) for the last bar of a trailing window (the live path; pass at least
        ``lookback`` bars for the full-history value)."""
        X = self._features().latest(window)
        if np.isnan(X).any():
            raise DataError(f"{self.symbol}: the last bar's features are incomplete (NaN)")
        return float(self.predictor.predict_proba(X)[0])

    @property
    def bars_needed(self) -> int:
        """Trailing bars `predict_latest` reads (the manifest's lookback)."""
        return self._features().lookback


Champion = LoadedModel
"""The champion an engine predicts with: ``watcher.current`` (see `LoadedModel`)."""


def load_release(registry: Any, plugins: Plugins, symbol: str, release_id: str,
                 recorded: Recorded | None, event_id: str = "") -> LoadedModel:
    """A release verified against what its ModelReleased recorded, loaded by the trainer it
    records, with its own feature set (the watcher's and the paper trader's one way in)."""
    manifest, files = registry.load(symbol, release_id, recorded=recorded)
    trainer = plugins.release_trainer(manifest.trainer, manifest.model_type)
    predictor = trainer.load(files)
    features = ReleaseFeatures.of(manifest, plugins)
    return LoadedModel(symbol, release_id, manifest, predictor, event_id, features)


def _champion_change(event: Event) -> str | None:
    """The release an event makes champion, if it is a champion change."""
    if isinstance(event, ModelPromoted | ModelRolledBack):
        return event.release_id
    return None


class ModelWatcher:
    """Follows one symbol's champion and keeps it loaded; see the module docstring."""

    def __init__(
        self,
        symbol: str,
        *,
        log: EventLog,
        registry: ModelRegistry,
        plugins: Plugins,
        on_swap: SwapCallback | None = None,
        on_error: ErrorCallback | None = None,
        follow_params: bool = False,
    ) -> None:
        self.symbol = symbol
        self._log = log
        self._registry = registry
        self._plugins = plugins
        self._on_swap = on_swap
        self._on_error = on_error
        self._current: LoadedModel | None = None
        self._sub: Any = None
        self._changed = asyncio.Condition()
        self._owns_log = False
        self._released: dict[str, Recorded] = {}
        """What each release's ModelReleased recorded: the authority its files must match."""
        self.errors: list[tuple[str, Exception]] = []
        self._others: dict[str, LoadedModel] = {}
        self._follow_params = follow_params
        self.params_watcher: ParamsWatcher | None = None
        """Follows ``<symbol>@strategy`` params releases (``follow_params``); feeds
        `LoadedModel.params`."""

    @classmethod
    async def open(
        cls,
        symbol: str,
        config: Config,
        *,
        on_swap: SwapCallback | None = None,
        on_error: ErrorCallback | None = None,
        follow_params: bool = False,
    ) -> ModelWatcher:
        """A started watcher wired from config (event log, registry in the data dir, plugins);
        ``follow_params``: the champion also carries the symbol's current strategy params."""
        from autoopt.runtime import open_event_log, open_plugins

        event_log = await open_event_log(config)
        watcher = cls(
            symbol,
            log=event_log,
            registry=open_registry(config),
            plugins=open_plugins(config),
            on_swap=on_swap,
            on_error=on_error,
            follow_params=follow_params,
        )
        watcher._owns_log = True
        await watcher.start()
        return watcher

    @property
    def current(self) -> LoadedModel | None:
        """The champion now loaded (None before the first release)."""
        return self._current

    def _model(self) -> LoadedModel:
        model = self._current  # one read: the whole call uses one model even during a swap
        if model is None:
            raise ArtifactError(f"{self.symbol}: no champion model loaded yet")
        return model

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self._model().predict_proba(X)

    def predict(self, bars: Bars) -> np.ndarray:
        """The champion's P(up) for every bar (see `LoadedModel.predict`)."""
        return self._model().predict(bars)

    def predict_latest(self, window: Bars) -> float:
        """The champion's P(up) for the window's last bar (see `LoadedModel.predict_latest`)."""
        return self._model().predict_latest(window)

    @property
    def params(self) -> StrategyParams | None:
        """The symbol's current strategy params (``follow_params``; None otherwise)."""
        return self.params_watcher.current if self.params_watcher is not None else None

    def _with_params(self, model: LoadedModel) -> LoadedModel:
        if self.params_watcher is None:
            return model
        params, release_id = self.params_watcher.state  # one read: never a torn pair
        if model.params is params and model.params_release_id == release_id:
            return model
        return replace(model, params=params, params_release_id=release_id)

    def _params_changed(self, params: StrategyParams, release_id: str) -> None:
        """A params release or rollback: swap in the champion with the new params (one
        reference assignment, on the event loop, like a model swap)."""
        current = self._current
        if current is not None:
            self._current = self._with_params(current)

    async def wait_for_params(self, release_id: str, timeout: float = 30.0) -> StrategyParams:
        """Wait until the params of ``release_id`` are current (the champion carries them from
        then on); TimeoutError otherwise."""
        if self.params_watcher is None:
            raise ArtifactError(f"{self.symbol}: the watcher does not follow params "
                                "(open it with follow_params=True)")
        return await self.params_watcher.wait_for(release_id, timeout)

    async def start(self) -> LoadedModel | None:
        """Load the champion recorded in the log, then follow changes live (and, with
        ``follow_params``, the symbol's strategy params first, so the first champion has them)."""
        if self._follow_params and self.params_watcher is None:
            from autoopt.strategy.follow import ParamsWatcher

            self.params_watcher = ParamsWatcher(self.symbol, log=self._log,
                                                registry=self._registry,
                                                on_change=self._params_changed)
            await self.params_watcher.start()
        filt = subject_filter("model", scope=self.symbol)
        last_seq = 0
        latest: Event | None = None
        async for record in self._log.replay_records(filt):
            last_seq = record.seq
            self._note_release(record.event)
            if _champion_change(record.event) is not None:
                latest = record.event
        if latest is not None:
            await self._apply(latest)
        cfg = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=last_seq + 1
        )
        self._sub = await self._log.js.subscribe(
            filt, cb=self._on_msg, ordered_consumer=True, config=cfg
        )
        return self._current

    async def _on_msg(self, msg: Any) -> None:
        try:
            event = decode(msg.data)
        except Exception as exc:  # not ours to dead-letter; the service's consumer does that
            log.error("undecodable model event on %s: %s", msg.subject, exc)
            return
        self._note_release(event)
        if _champion_change(event) is not None:
            await self._apply(event)

    def _note_release(self, event: Event) -> None:
        if isinstance(event, ModelReleased):
            self._released[event.release_id] = Recorded(
                sha256=event.sha256, manifest_sha256=event.manifest_sha256)

    async def _apply(self, event: Event) -> None:
        release_id = _champion_change(event)
        assert release_id is not None
        if self._current is not None and self._current.release_id == release_id:
            return
        try:
            loaded = await asyncio.to_thread(self._load, release_id, event.event_id)
        except (AutooptError, OSError) as exc:
            await self._refuse(exc, event)
            return
        loaded = self._with_params(loaded)
        previous, self._current = self._current, loaded
        log.info(
            "swapped %s champion %s -> %s",
            self.symbol,
            previous.release_id if previous else None,
            release_id,
            extra={"event_id": event.event_id, "correlation_id": event.correlation_id},
        )
        if self._on_swap is not None:
            result = self._on_swap(loaded, previous)
            if asyncio.iscoroutine(result):
                await result
        async with self._changed:
            self._changed.notify_all()

    def _load(self, release_id: str, event_id: str) -> LoadedModel:
        recorded = self._released.get(release_id)
        if recorded is None:
            raise ArtifactError(
                f"{self.symbol}: release {release_id} has no ModelReleased in the log: an "
                "unrecorded artifact is not loaded"
            )
        return load_release(self._registry, self._plugins, self.symbol, release_id, recorded,
                            event_id)

    async def _refuse(self, exc: Exception, event: Event) -> None:
        self.errors.append((_champion_change(event) or "", exc))
        log.error("refused release for %s: %s", self.symbol, exc, extra={"event_id": event.event_id})
        error = ErrorRaised.new(
            component="model-watcher",
            error_type=type(exc).__name__,
            message=str(exc),
            details={"symbol": self.symbol, "release_id": _champion_change(event)},
            cause=event,
        )
        try:
            await self._log.append(error)
        except AutooptError as append_exc:
            log.error("could not record the refusal: %s", append_exc)
        if self._on_error is not None:
            result = self._on_error(exc, event)
            if asyncio.iscoroutine(result):
                await result
        async with self._changed:
            self._changed.notify_all()

    async def model(self, release_id: str) -> LoadedModel:
        """Any release of the symbol the log recorded, loaded and verified like the champion
        (cached): what an engine trades a routed signal of a split experiment with (the route's
        ``release_id``), e.g. a canary's challenger."""
        current = self._current
        if current is not None and current.release_id == release_id:
            return current
        cached = self._others.get(release_id)
        if cached is None:
            cached = await asyncio.to_thread(self._load, release_id, "")
            self._others[release_id] = cached
        return self._with_params(cached)

    async def wait_for(self, release_id: str, timeout: float = 30.0) -> LoadedModel:
        """Wait until ``release_id`` is the loaded champion (or raise TimeoutError)."""

        def ready() -> bool:
            return self._current is not None and self._current.release_id == release_id

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(ready), timeout)
        assert self._current is not None
        return self._current

    async def close(self) -> None:
        if self.params_watcher is not None:
            await self.params_watcher.stop()
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        if self._owns_log:
            await self._log.close()
            await asyncio.to_thread(self._registry.close)
