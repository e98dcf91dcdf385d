"""The model registry on NATS: releases in a JetStream Object Store, `current` in a KV bucket.

Why: several hosts share releases through the server they already run, not a shared folder.
Every host sees the same releases with the same checksums; the local data dir is only a cache.

Layout (bucket ``autoopt-models``, object names)::

    <symbol%>/<release_id>/<file>               the artifact files (uploaded at `stage`)
    <symbol%>/.staged-<release_id>/manifest.json  the manifest while staged (hidden)
    <symbol%>/<release_id>/manifest.json        the manifest once published

and KV bucket ``autoopt-current``: key ``current.<symbol%>`` (``%`` and ``~`` spelled ``=``
and ``=7E``) → release id.

- `publish` is one object put: the published manifest is the release's existence, written after
  every file it names; a reader that finds it finds the files. Publishing twice, or on another
  host than the one that staged (a job resumed elsewhere), is the same release.
- `set_current` verifies the release, then puts the KV key: one atomic write that every host
  reads (`current`); rollback is the same put to the parent.
- Reading downloads the release into the local cache (a hidden temp dir, renamed into place)
  and then runs exactly the local registry's checks (file digests, artifact-set hash, release id
  re-derived from the manifest, and the log's `Recorded` digests), so a blob changed in the
  store is refused like a file changed on disk.

The synchronous API is the local registry's (`ModelRegistry`); NATS calls run on a private
loop thread (`SyncNats`), each bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from autoopt.errors import ArtifactError, AutooptError
from autoopt.log.connect import NatsSettings
from autoopt.registry import (
    MANIFEST,
    STAGED,
    Entry,
    Manifest,
    ModelRegistry,
    Recorded,
    _check_name,
    _fsync_dir,
    _write,
    manifest_bytes,
)
from autoopt.syncnats import SyncNats

log = logging.getLogger(__name__)

OBJECT_BUCKET = "autoopt-models"
CURRENT_BUCKET = "autoopt-current"


def _enc(symbol: str) -> str:
    return quote(symbol, safe="")


def _kv_key(symbol: str) -> str:
    return "current." + _enc(symbol).replace("%", "=").replace("~", "=7E").replace(".", "=2E")


class NatsModelRegistry(ModelRegistry):
    """`ModelRegistry` whose source of truth is NATS; ``root`` holds a verified local cache."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        settings: NatsSettings,
        *,
        bucket: str = OBJECT_BUCKET,
        current_bucket: str = CURRENT_BUCKET,
        nats: SyncNats | None = None,
    ) -> None:
        super().__init__(root)
        self._nats = nats or SyncNats(settings, data_dir=root)
        self._bucket_name = bucket
        self._current_name = current_bucket
        self._obs: Any = None
        self._kv: Any = None
        self._timeout = settings.request_timeout_s * 2

    def close(self) -> None:
        self._nats.close()

    # ---------------------------------------------------------------- NATS plumbing

    async def _stores(self) -> tuple[Any, Any]:
        if self._obs is None:
            from nats.js.api import StorageType

            js = self._nats.js
            replicas = self._nats.settings.replicas
            try:
                self._obs = await js.object_store(self._bucket_name)
            except Exception:
                self._obs = await js.create_object_store(
                    self._bucket_name, storage=StorageType.FILE, replicas=replicas,
                    description="autoopt model releases")
            try:
                self._kv = await js.key_value(self._current_name)
            except Exception:
                self._kv = await js.create_key_value(
                    bucket=self._current_name, history=16, storage=StorageType.FILE,
                    replicas=replicas, description="autoopt current release per symbol")
        return self._obs, self._kv

    def _call(self, what: str, fn: Any, timeout: float | None = None) -> Any:
        """Run one store operation, each try bounded by ``timeout``; what passes by itself (a
        timeout, no responders while a stream leader is elected, a connection failing over to
        another node) is retried on `autoopt.log.retry`'s schedule for the event log's retry
        window. Every operation is idempotent (puts of the same bytes, reads), so a retry after
        an unseen success does no harm. A server that never answered is one error at once:
        the first connection already retried within ``nats.connect_timeout_s``."""
        import nats.errors

        from autoopt.log.retry import retrying

        per_try = timeout or self._timeout
        window = max(30.0, 3 * self._nats.settings.request_timeout_s)

        async def once() -> Any:
            return await asyncio.wait_for(fn(), per_try)

        async def run() -> Any:
            return await retrying(once, what="NATS", deadline_s=window)

        try:
            return self._nats.call(run, timeout=window + per_try + 5.0)
        except ArtifactError:
            raise
        except (AutooptError, nats.errors.Error, TimeoutError, OSError) as exc:
            raise ArtifactError(f"registry on NATS: {what}: {type(exc).__name__}: {exc}") from None

    def _get(self, name: str) -> bytes | None:
        """An object's bytes, None when absent (the store checks its own digest)."""
        from nats.js.errors import ObjectNotFoundError

        async def get() -> bytes | None:
            obs, _ = await self._stores()
            try:
                info = await obs.get_info(name)
            except ObjectNotFoundError:
                return None
            return await self._chunks(info)

        return self._call(f"get {name}", get, timeout=max(self._timeout, 120.0))

    async def _chunks(self, info: Any) -> bytes:
        """An object's chunks joined once, checked against the store's SHA-256 (nats-py's own
        `get` appends bytes chunk by chunk, quadratic in the size, or hops to a thread for
        each chunk when given a buffer)."""
        import base64

        if not info.size:
            return b""
        js = self._nats.js
        sub = await js.subscribe(f"$O.{self._bucket_name}.C.{info.nuid}", ordered_consumer=True)
        parts: builtins.list[bytes] = []
        try:
            while True:
                msg = await sub.next_msg(timeout=self._nats.settings.request_timeout_s)
                parts.append(msg.data)
                if msg.metadata.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
        data = b"".join(parts)
        want = base64.urlsafe_b64decode(info.digest.split("=", 1)[1])
        if hashlib.sha256(data).digest() != want:
            raise ArtifactError(f"object {info.name!r}: SHA-256 differs from the store's digest")
        return data

    def _exists(self, name: str) -> bool:
        from nats.js.errors import ObjectNotFoundError

        async def info() -> bool:
            obs, _ = await self._stores()
            try:
                await obs.get_info(name)
            except ObjectNotFoundError:
                return False
            return True

        return self._call(f"info {name}", info)

    def _put(self, name: str, data: bytes) -> None:
        async def put() -> None:
            obs, _ = await self._stores()
            await obs.put(name, io.BytesIO(data))

        self._call(f"put {name}", put, timeout=self._timeout + len(data) / 5e6)

    def _delete(self, name: str) -> None:
        async def delete() -> None:
            obs, _ = await self._stores()
            try:
                await obs.delete(name)
            except Exception as exc:  # already gone: deleting a staged manifest is housekeeping
                log.debug("registry: delete %s left alone: %s", name, exc)

        self._call(f"delete {name}", delete)

    def _names(self) -> builtins.list[str]:
        from nats.js.errors import NotFoundError

        async def names() -> builtins.list[str]:
            obs, _ = await self._stores()
            try:
                return [i.name for i in await obs.list(ignore_deletes=True)]
            except NotFoundError:
                return []

        return self._call("list objects", names)

    # ---------------------------------------------------------------- names

    def _obj(self, symbol: str, release_id: str, name: str) -> str:
        self.symbol_dir(symbol)
        return f"{_enc(symbol)}/{_check_name('release id', release_id)}/{name}"

    def _staged_obj(self, symbol: str, release_id: str) -> str:
        return f"{_enc(symbol)}/{STAGED}{_check_name('release id', release_id)}/{MANIFEST}"

    # ---------------------------------------------------------------- write

    def stage(self, manifest: Manifest, blobs: Mapping[str, bytes]) -> Manifest:
        """Stage in the local cache (all the local checks), then upload the files and the
        manifest as staged. A release already published in the store must be the same."""
        staged = super().stage(manifest, blobs)
        symbol, rid = manifest.symbol, manifest.release_id
        raw = manifest_bytes(staged)
        published = self._get(self._obj(symbol, rid, MANIFEST))
        if published is not None:
            if published != raw:
                raise ArtifactError(f"{symbol}: release {rid} already exists with different content")
            return staged
        for name, data in sorted(blobs.items()):
            self._put(self._obj(symbol, rid, name), data)
        self._put(self._staged_obj(symbol, rid), raw)
        return staged

    def publish(self, symbol: str, release_id: str) -> Manifest:
        """Publish a staged release: the published manifest is put after its files (verified
        first). Idempotent, and works on a host whose cache lacks the staged copy."""
        final_obj = self._obj(symbol, release_id, MANIFEST)
        if self._exists(final_obj):
            return self.load(symbol, release_id)[0]
        if not self.staged_dir(symbol, release_id).exists() and not self.release_dir(
                symbol, release_id).exists():
            raw = self._get(self._staged_obj(symbol, release_id))
            if raw is None:
                raise ArtifactError(
                    f"{symbol}: release {release_id} was neither staged nor published "
                    f"(object store {self._bucket_name})")
            self._download(symbol, release_id, raw, self.staged_dir(symbol, release_id))
        staged = self.staged_dir(symbol, release_id)
        here = staged if staged.exists() else self.release_dir(symbol, release_id)
        manifest, _ = self._read(symbol, release_id, here, None)
        self._put(final_obj, manifest_bytes(manifest))
        self._delete(self._staged_obj(symbol, release_id))
        return super().publish(symbol, release_id)

    def set_current(
        self, symbol: str, release_id: str, *, recorded: Recorded | None = None
    ) -> None:
        """Verify the release (against ``recorded`` when given), then put ``current`` in the
        KV bucket: one atomic write every host reads."""
        self.load(symbol, release_id, recorded=recorded)
        key = _kv_key(symbol)

        async def put() -> None:
            _, kv = await self._stores()
            await kv.put(key, release_id.encode())

        self._call(f"set {key}", put)

    # ---------------------------------------------------------------- read

    def current(self, symbol: str) -> str | None:
        from nats.js.errors import KeyNotFoundError

        key = _kv_key(symbol)
        self.symbol_dir(symbol)

        async def get() -> str | None:
            _, kv = await self._stores()
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                return None
            return entry.value.decode() if entry.value else None

        return self._call(f"get {key}", get)

    def _download(self, symbol: str, rid: str, raw: bytes, dest: Path) -> None:
        """Fetch a release's files from the store into ``dest`` through a verified temp dir."""
        import msgspec

        from autoopt.registry import _decoder

        try:
            names = sorted(_decoder.decode(raw).files)
        except msgspec.DecodeError as exc:
            raise ArtifactError(
                f"{symbol}/{rid}: {MANIFEST} in the object store is corrupt: {exc}") from None
        sdir = self.symbol_dir(symbol)
        sdir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=sdir))
        try:
            for name in names:
                data = self._get(self._obj(symbol, rid, _check_name("file name", name)))
                if data is None:
                    raise ArtifactError(f"{symbol}/{rid}: file {name!r} is missing from the store")
                _write(tmp / name, data)
            _write(tmp / MANIFEST, raw)
            self._read(symbol, rid, tmp, None)  # every local check before it is visible
            _fsync_dir(tmp)
            try:
                os.rename(tmp, dest)
            except OSError:
                if not dest.exists():
                    raise
            _fsync_dir(sdir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _cached(self, symbol: str, release_id: str) -> None:
        """Make sure the published release is in the local cache, as the store has it."""
        final = self.release_dir(symbol, release_id)
        raw = self._get(self._obj(symbol, release_id, MANIFEST))
        if raw is None:
            raise ArtifactError(
                f"{symbol}: release {release_id} not found (object store {self._bucket_name})")
        if final.exists():
            try:
                if (final / MANIFEST).read_bytes() == raw:
                    return
            except FileNotFoundError:
                pass
            shutil.rmtree(final, ignore_errors=True)  # a stale cache entry: the store wins
        self._download(symbol, release_id, raw, final)

    def manifest(self, symbol: str, release_id: str) -> Manifest:
        self._cached(symbol, release_id)
        return super().manifest(symbol, release_id)

    def load(
        self, symbol: str, release_id: str | None = None, *, recorded: Recorded | None = None
    ) -> tuple[Manifest, dict[str, bytes]]:
        rid = release_id if release_id is not None else self.current(symbol)
        if rid is None:
            raise ArtifactError(f"{symbol}: no current release")
        self._cached(symbol, rid)
        return super().load(symbol, rid, recorded=recorded)

    def _published(self) -> dict[str, builtins.list[str]]:
        out: dict[str, builtins.list[str]] = {}
        for name in self._names():
            parts = name.split("/")
            if len(parts) == 3 and parts[2] == MANIFEST and not parts[1].startswith("."):
                out.setdefault(unquote(parts[0]), []).append(parts[1])
        return out

    def uri(self, symbol: str, release_id: str) -> str:
        """``nats-obj://<bucket>/<symbol%>/<release_id>``: the same on every host."""
        return f"nats-obj://{self._bucket_name}/{self._obj(symbol, release_id, '')}".rstrip("/")

    def symbols(self) -> builtins.list[str]:
        return sorted(self._published())

    def entries(self, symbol: str) -> builtins.list[Entry]:
        """Every published release of the symbol in the store, each downloaded and verified."""
        good: builtins.list[Entry] = []
        bad: builtins.list[Entry] = []
        for rid in self._published().get(symbol, []):
            try:
                good.append(Entry(rid, self.load(symbol, rid)[0]))
            except ArtifactError as exc:
                bad.append(Entry(rid, None, str(exc)))
        good.sort(key=lambda e: (e.manifest.created_at, e.release_id))  # type: ignore[union-attr]
        return good + sorted(bad, key=lambda e: e.release_id)


__all__ = ["CURRENT_BUCKET", "OBJECT_BUCKET", "NatsModelRegistry"]
