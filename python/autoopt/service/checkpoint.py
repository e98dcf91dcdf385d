"""Decision-core checkpoints in a JetStream key-value bucket.

A checkpoint is (CORE sequence, config digest, core state bytes). Every instance computes the
same state at the same sequence, so any instance may write it; a write never moves the stored
sequence backwards. A checkpoint taken under another policy config is ignored (the state would
differ), and the service rebuilds from the log instead, which gives the same state; so is one
that does not decode. The decider saves only committed state (see `Decider.feed`).
"""

from __future__ import annotations

import hashlib
import logging

import msgspec
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from autoopt.config import Config
from autoopt.core import State
from autoopt.errors import DataError
from autoopt.log import EventLog

log = logging.getLogger(__name__)

BUCKET = "autoopt_checkpoints"
KEY = "core"


class Checkpoint(msgspec.Struct, kw_only=True):
    seq: int
    config_digest: str
    state: bytes


def policy_digest(config: Config) -> str:
    """SHA-256 of what the core's decisions depend on: the policy section and the symbols."""
    raw = msgspec.msgpack.encode(
        {"policy": msgspec.to_builtins(config.policy), "symbols": config.symbols}, order="deterministic"
    )
    return hashlib.sha256(raw).hexdigest()


class Checkpoints:
    def __init__(self, kv: KeyValue, digest: str, window_s: float = 30.0) -> None:
        self._kv = kv
        self._digest = digest
        self._window_s = window_s

    @classmethod
    async def open(cls, event_log: EventLog, config: Config) -> Checkpoints:
        """Open (or create) the bucket, retrying what passes by itself: several instances
        starting at once on a fresh cluster create it together, and a replicated bucket's
        creation can outlast one request timeout while its leader is elected."""
        from autoopt.log.retry import retrying

        js = event_log.js

        async def bucket() -> KeyValue:
            try:
                return await js.key_value(BUCKET)
            except BucketNotFoundError:
                from nats.js.api import KeyValueConfig

                return await js.create_key_value(
                    KeyValueConfig(bucket=BUCKET, history=1, replicas=event_log.settings.replicas)
                )

        window = max(30.0, 3 * event_log.settings.request_timeout_s)
        kv = await retrying(bucket, what=f"checkpoint bucket {BUCKET}", deadline_s=window)
        return cls(kv, policy_digest(config), window)

    async def load(self) -> tuple[State, int] | None:
        """(state, sequence it covers) or None when there is no usable checkpoint."""
        from autoopt.log.retry import is_transient, retrying

        def transient(exc: BaseException) -> bool:  # an absent key is an answer, not a failure
            return not isinstance(exc, KeyNotFoundError) and is_transient(exc)

        try:  # a just created replicated bucket answers once its leader is elected
            entry = await retrying(lambda: self._kv.get(KEY), what=f"checkpoint {KEY}",
                                   deadline_s=self._window_s, transient=transient)
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        try:
            cp = msgspec.msgpack.decode(entry.value, type=Checkpoint)
            if cp.config_digest != self._digest:
                log.warning("checkpoint at seq %d was taken under another policy config; rebuilding", cp.seq)
                return None
            return State.from_bytes(cp.state), cp.seq
        except (msgspec.DecodeError, DataError) as exc:  # unreadable: the log still has it all
            log.warning("checkpoint is unreadable (%s); rebuilding from the log", exc)
            return None

    async def save(self, state: State, seq: int) -> bool:
        """Store the checkpoint unless a newer one is already there; True when written."""
        value = msgspec.msgpack.encode(Checkpoint(seq=seq, config_digest=self._digest, state=state.to_bytes()))
        for _ in range(5):
            try:
                entry = await self._kv.get(KEY)
            except KeyNotFoundError:
                try:
                    await self._kv.create(KEY, value)
                    return True
                except Exception:  # created concurrently: read it and compare
                    continue
            if entry.value is not None:
                try:
                    stored = msgspec.msgpack.decode(entry.value, type=Checkpoint)
                except msgspec.DecodeError:
                    stored = None  # unreadable: replace it
                if stored is not None and stored.seq >= seq and stored.config_digest == self._digest:
                    return False
            try:
                await self._kv.update(KEY, value, last=entry.revision)
                return True
            except KeyWrongLastSequenceError:
                continue
        return False
