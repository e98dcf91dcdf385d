"""The decision core's projection of the log: everything `decide` needs to remember.

Why a projection: the log is the source of truth; this state is rebuilt by replaying it and a
checkpoint (`State.to_bytes`) is only a speed-up. Everything here is a msgspec Struct so a
checkpoint is plain msgpack (never pickle); live streaming drift detectors (built-in or a
plugin's) are kept as objects between events, serialized with their own ``to_bytes`` at
checkpoint time and restored by their factory's ``from_bytes`` on first use
(`autoopt.plugins.interfaces.DriftDetectorFactory`).

Ordered collections are lists, never dict insertion order: a checkpoint encodes dicts with sorted
keys, so anything whose order matters must survive that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from autoopt.errors import DataError

STATE_VERSION = 1
MAX_RELEASES = 8  # releases remembered per symbol (rollback targets)
MAX_REFERENCES = 4  # training references kept per symbol
MAX_MANUAL_DONE = 1024  # decided manual request ids remembered (redelivery dedup)


class Detector(Protocol):
    """What the core needs from a streaming detector (`autoopt.drift.ADWIN`, a plugin's)."""

    def update(self, x: float) -> bool: ...

    def to_bytes(self) -> bytes: ...


class DetectorFactory(Protocol):
    """What the core needs from a `DriftDetectorFactory`: restore a detector from its bytes."""

    name: str

    def from_bytes(self, data: bytes) -> Detector: ...


class PendingRetrain(msgspec.Struct, kw_only=True):
    """A retrain the core decided that has not started yet (counts as in flight)."""

    id: str
    reason: str
    decided_ns: int
    event_id: str


class ReleaseInfo(msgspec.Struct, kw_only=True):
    release_id: str
    metrics: dict[str, float]
    released_ns: int


class Reference(msgspec.Struct, kw_only=True):
    """A release's training reference: float64 little-endian columns, at most N rows."""

    release_id: str
    feature_set: str
    columns: list[str]
    values: list[bytes]
    rows: int
    thresholds: dict[str, list[float]] = msgspec.field(default_factory=dict)
    """Calibrated drift thresholds, ``"<column>|<window rows>|<alpha>"`` -> [PSI, KS statistic,
    block length] (`autoopt.drift_calibration`), computed on first use."""


class ManualRequest(msgspec.Struct, kw_only=True):
    event_id: str
    symbol: str
    requested_ns: int
    requested_by: str = ""
    reason: str = ""
    """The request's own reason ("manual", "desk asked", "engine: fills degraded"...)."""


class SymbolState(msgspec.Struct, kw_only=True):
    """Per-symbol memory of every policy and guard."""

    symbol: str
    registered_ns: int
    # schedule: the first cron instant after the last check, for ``sched_expr``
    sched_expr: str | None = None
    sched_next_ns: int | None = None
    # guards
    last_retrain_ns: int | None = None  # last retrain decision or release
    pending: PendingRetrain | None = None
    running: dict[str, int] = msgspec.field(default_factory=dict)  # run_id -> started ns
    # champion
    champion: str | None = None
    releases: list[ReleaseInfo] = msgspec.field(default_factory=list)
    references: list[Reference] = msgspec.field(default_factory=list)
    # degradation
    window: list[dict[str, float]] = msgspec.field(default_factory=list)
    baseline: dict[str, float] = msgspec.field(default_factory=dict)
    baseline_source: dict[str, str] = msgspec.field(default_factory=dict)
    # drift: live feature rows gathered for the next PSI/KS evaluation
    buffer_feature_set: str = ""
    buffer_columns: list[str] = msgspec.field(default_factory=list)
    buffer_values: list[bytes] = msgspec.field(default_factory=list)
    buffer_rows: int = 0
    # streaming detectors ("adwin.prediction"...): serialized form and values seen since reset
    detectors: dict[str, bytes] = msgspec.field(default_factory=dict)
    detector_counts: dict[str, int] = msgspec.field(default_factory=dict)
    # degradation's live test: the champion whose live returns are in the degraded state
    live_degraded: str | None = None
    # confidence-based performance estimation: running sums over the current window
    cbpe_sum: float = 0.0
    cbpe_var: float = 0.0
    cbpe_n: int = 0

    def release(self, release_id: str | None) -> ReleaseInfo | None:
        for info in self.releases:
            if info.release_id == release_id:
                return info
        return None

    def reference(self, release_id: str | None) -> Reference | None:
        for ref in self.references:
            if ref.release_id == release_id:
                return ref
        return None

    @property
    def in_flight(self) -> bool:
        return self.pending is not None or bool(self.running)


class StateData(msgspec.Struct, kw_only=True):
    """The encodable part of `State` (what a checkpoint holds)."""

    version: int = STATE_VERSION
    clock_ns: int = 0  # the core's clock: max of every `now` seen
    n_events: int = 0  # events decided (ignored types not counted)
    symbols: dict[str, SymbolState] = msgspec.field(default_factory=dict)
    in_flight: list[str] = msgspec.field(default_factory=list)  # sorted symbols
    # earliest pending cron instant over all symbols, valid for the schedules in `sched_key`
    sched_key: str = ""
    sched_min_ns: int | None = None
    manual_queue: list[ManualRequest] = msgspec.field(default_factory=list)
    manual_done: list[str] = msgspec.field(default_factory=list)


_encoder = msgspec.msgpack.Encoder(order="deterministic")
_decoder = msgspec.msgpack.Decoder(StateData)


class State:
    """Decision-core state: `StateData` plus the live detector objects.

    `decide` takes ownership: it updates the state in place and returns it. Keep
    ``state.to_bytes()`` if an earlier version is needed.
    """

    __slots__ = ("data", "_live")

    def __init__(self, data: StateData | None = None) -> None:
        self.data = data if data is not None else StateData()
        self._live: dict[tuple[str, str], Detector] = {}

    # ------------------------------------------------------------------ checkpoint
    def to_bytes(self) -> bytes:
        """Deterministic msgpack checkpoint (detectors via their own ``to_bytes``)."""
        for (symbol, name), det in self._live.items():
            self.data.symbols[symbol].detectors[name] = det.to_bytes()
        return _encoder.encode(self.data)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> State:
        """Restore a checkpoint; DataError if it is not one this version can read."""
        try:
            decoded = _decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise DataError(f"bytes are not a decision-core checkpoint: {exc}") from exc
        if decoded.version != STATE_VERSION:
            raise DataError(
                f"decision-core checkpoint version {decoded.version} is not {STATE_VERSION}"
            )
        return cls(decoded)

    def digest(self) -> str:
        """SHA-256 hex of the checkpoint bytes (compare states cheaply)."""
        import hashlib

        return hashlib.sha256(self.to_bytes()).hexdigest()

    # ------------------------------------------------------------------ detectors
    def detector(
        self, symbol: str, name: str, factory: DetectorFactory, make: Callable[[], Detector]
    ) -> Detector:
        """The live detector ``name`` of ``symbol``: restored from its checkpointed bytes by
        ``factory.from_bytes``, else ``make()``; DataError (one line) if the bytes do not
        restore."""
        key = (symbol, name)
        det = self._live.get(key)
        if det is None:
            raw = self.data.symbols[symbol].detectors.get(name)
            if raw is None:
                det = make()
            else:
                try:
                    det = factory.from_bytes(raw)
                except Exception as exc:
                    raise DataError(
                        f"checkpointed drift detector {name!r} of {symbol} does not restore with "
                        f"detector {factory.name!r}: {type(exc).__name__}: {exc}"
                    ) from None
            self._live[key] = det
        return det

    def reset_detector(self, symbol: str, name: str) -> None:
        self._live.pop((symbol, name), None)
        sym = self.data.symbols[symbol]
        sym.detectors.pop(name, None)
        sym.detector_counts.pop(name, None)

    def reset_detectors(self, symbol: str) -> None:
        for key in [k for k in self._live if k[0] == symbol]:
            del self._live[key]
        sym = self.data.symbols[symbol]
        sym.detectors.clear()
        sym.detector_counts.clear()

    # ------------------------------------------------------------------ views
    def symbol(self, name: str) -> SymbolState | None:
        return self.data.symbols.get(name)

    @property
    def clock_ns(self) -> int:
        return self.data.clock_ns

    def champion(self, symbol: str) -> str | None:
        sym = self.data.symbols.get(symbol)
        return sym.champion if sym is not None else None

    def in_flight(self) -> list[str]:
        """Symbols with a decided-but-not-started or running retrain, sorted."""
        return list(self.data.in_flight)


__all__ = [
    "Detector",
    "DetectorFactory",
    "ManualRequest",
    "PendingRetrain",
    "Reference",
    "ReleaseInfo",
    "State",
    "StateData",
    "SymbolState",
]
