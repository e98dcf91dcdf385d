"""Model artifact registry on disk: content-addressed releases and an atomically switched `current`.

Layout::

    <root>/models/<symbol>/<release_id>/{<model files>, manifest.json}
    <root>/models/<symbol>/current -> <release_id>      (relative symlink)

- A release is written into a hidden temp dir and renamed into place, so a release dir either
  exists complete or not at all; saving the same release twice is a no-op.
- `current` is switched by creating a temp symlink and `os.replace`-ing it over the old one
  (an atomic rename on POSIX): a reader always sees the old or the new release, never neither.
- Loading verifies every file's SHA-256 and the artifact-set hash, and refuses a mismatch.

The registry does file I/O only; callers append the matching events (release, rollback).
Symbols are percent-encoded into one path component (``BTC/USDT`` → ``BTC%2FUSDT``).
"""

from __future__ import annotations

import builtins
import hashlib
import math
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import EllipsisType
from typing import Any
from urllib.parse import quote

import msgspec

from autoopt.errors import ArtifactError

MANIFEST = "manifest.json"
CURRENT = "current"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class DataRange(msgspec.Struct, frozen=True):
    """First and last bar timestamp (ns) the model was trained on."""

    start: int
    end: int


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    release_id: str
    symbol: str
    model_type: str
    created_at: int
    params: dict[str, Any]
    features: list[str]
    metrics: dict[str, float | None]
    data_range: DataRange
    parent_release: str | None
    files: dict[str, str]
    """File name → SHA-256 hex digest."""
    sha256: str
    """SHA-256 of the artifact set (see `artifact_set_sha256`)."""
    feature_importances: dict[str, float] = {}
    schema: int = 1


_encoder = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder(Manifest)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def artifact_set_sha256(files: Mapping[str, str]) -> str:
    """SHA-256 over ``name NUL digest LF`` for each file, in name order."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{files[name]}\n".encode())
    return h.hexdigest()


def _check_name(kind: str, name: str) -> str:
    if not _NAME.match(name) or name in (MANIFEST, CURRENT):
        raise ArtifactError(f"invalid {kind} {name!r}: use [A-Za-z0-9._-], not {MANIFEST}/{CURRENT}")
    return name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class ModelRegistry:
    """Releases per symbol under `<root>/models`."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.models = self.root / "models"

    # ---------------------------------------------------------------- paths

    def symbol_dir(self, symbol: str) -> Path:
        if not symbol or symbol in (".", ".."):
            raise ArtifactError(f"invalid symbol {symbol!r}")
        return self.models / quote(symbol, safe="")

    def release_dir(self, symbol: str, release_id: str) -> Path:
        return self.symbol_dir(symbol) / _check_name("release id", release_id)

    # ---------------------------------------------------------------- write

    def save(
        self,
        symbol: str,
        files: Mapping[str, bytes | os.PathLike[str]],
        *,
        model_type: str,
        created_at: int,
        params: Mapping[str, Any] | None = None,
        features: Sequence[str] = (),
        metrics: Mapping[str, float] | None = None,
        data_range: tuple[int, int] | DataRange,
        parent_release: str | None | EllipsisType = ...,
        feature_importances: Mapping[str, float] | None = None,
        release_id: str | None = None,
    ) -> Manifest:
        """Write a release; returns its manifest. `current` is not changed (see `set_current`).

        `parent_release` defaults to the symbol's current release. `release_id` defaults to the
        first 16 hex digits of the SHA-256 of the manifest's content, so the same content saved
        twice is the same release (and the second save is a no-op).
        """
        if not files:
            raise ArtifactError(f"{symbol}: a release needs at least one file")
        blobs: dict[str, bytes] = {}
        for name, content in files.items():
            _check_name("file name", name)
            blobs[name] = content if isinstance(content, bytes) else Path(content).read_bytes()
        digests = {n: sha256_bytes(b) for n, b in sorted(blobs.items())}
        parent = self.current(symbol) if parent_release is ... else parent_release
        dr = data_range if isinstance(data_range, DataRange) else DataRange(*data_range)
        clean_metrics = {
            k: (float(v) if v is not None and math.isfinite(float(v)) else None)
            for k, v in (metrics or {}).items()
        }
        body = Manifest(
            release_id="",
            symbol=symbol,
            model_type=model_type,
            created_at=int(created_at),
            params=dict(params or {}),
            features=list(features),
            metrics=clean_metrics,
            data_range=dr,
            parent_release=parent,
            files=digests,
            sha256=artifact_set_sha256(digests),
            feature_importances={k: float(v) for k, v in (feature_importances or {}).items()},
        )
        rid = release_id or sha256_bytes(_encoder.encode(body))[:16]
        manifest = _decoder.decode(_encoder.encode(msgspec.structs.replace(body, release_id=rid)))
        final = self.release_dir(symbol, rid)
        if final.exists():
            return self._same_or_conflict(symbol, rid, manifest)
        sdir = self.symbol_dir(symbol)
        sdir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=sdir))
        try:
            for name, data in blobs.items():
                _write(tmp / name, data)
            _write(tmp / MANIFEST, _encoder.encode(manifest))
            _fsync_dir(tmp)
            try:
                os.rename(tmp, final)
            except OSError:
                if final.exists():  # lost a race against an identical save
                    return self._same_or_conflict(symbol, rid, manifest)
                raise
            _fsync_dir(sdir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return manifest

    def _same_or_conflict(self, symbol: str, rid: str, manifest: Manifest) -> Manifest:
        existing = self.manifest(symbol, rid)
        if existing != manifest:
            raise ArtifactError(f"{symbol}: release {rid} already exists with different content")
        return existing

    def set_current(self, symbol: str, release_id: str) -> None:
        """Point `current` at a release (verified first) by atomic symlink replace."""
        self.load(symbol, release_id)
        sdir = self.symbol_dir(symbol)
        tmp = sdir / f".current.tmp-{uuid.uuid4().hex}"
        os.symlink(release_id, tmp)
        try:
            os.replace(tmp, sdir / CURRENT)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(sdir)

    def rollback(self, symbol: str, to: str | None = None) -> tuple[str, str]:
        """Point `current` back at its parent release (or at `to`); returns (from, to)."""
        cur = self.current(symbol)
        if cur is None:
            raise ArtifactError(f"{symbol}: no current release to roll back from")
        target = to if to is not None else self.manifest(symbol, cur).parent_release
        if target is None:
            raise ArtifactError(f"{symbol}: current release {cur} has no parent to roll back to")
        self.set_current(symbol, target)
        return cur, target

    # ---------------------------------------------------------------- read

    def current(self, symbol: str) -> str | None:
        try:
            return os.readlink(self.symbol_dir(symbol) / CURRENT)
        except FileNotFoundError:
            return None

    def manifest(self, symbol: str, release_id: str) -> Manifest:
        path = self.release_dir(symbol, release_id) / MANIFEST
        try:
            m = _decoder.decode(path.read_bytes())
        except FileNotFoundError:
            raise ArtifactError(f"{symbol}: release {release_id} not found ({path})") from None
        except msgspec.DecodeError as e:
            raise ArtifactError(f"{symbol}: release {release_id}: bad {MANIFEST}: {e}") from None
        if m.release_id != release_id or m.symbol != symbol:
            raise ArtifactError(
                f"{symbol}: {path} names release {m.release_id!r} of {m.symbol!r}: misplaced"
            )
        return m

    def load(self, symbol: str, release_id: str | None = None) -> tuple[Manifest, dict[str, bytes]]:
        """Read a release (default: current) and verify every checksum; ArtifactError on mismatch."""
        rid = release_id if release_id is not None else self.current(symbol)
        if rid is None:
            raise ArtifactError(f"{symbol}: no current release")
        m = self.manifest(symbol, rid)
        rdir = self.release_dir(symbol, rid)
        blobs: dict[str, bytes] = {}
        for name, digest in m.files.items():
            try:
                data = (rdir / _check_name("file name", name)).read_bytes()
            except FileNotFoundError:
                raise ArtifactError(f"{symbol}/{rid}: file {name!r} is missing") from None
            actual = sha256_bytes(data)
            if actual != digest:
                raise ArtifactError(
                    f"{symbol}/{rid}: SHA-256 mismatch for {name!r}: manifest {digest}, file {actual}"
                )
            blobs[name] = data
        if artifact_set_sha256(m.files) != m.sha256:
            raise ArtifactError(f"{symbol}/{rid}: artifact-set SHA-256 does not match the manifest")
        return m, blobs

    def list(self, symbol: str) -> builtins.list[Manifest]:
        """Every release of a symbol, oldest first (by created_at, then id)."""
        sdir = self.symbol_dir(symbol)
        if not sdir.is_dir():
            return []
        out = [
            self.manifest(symbol, p.name)
            for p in sdir.iterdir()
            if not p.name.startswith(".") and p.name != CURRENT and (p / MANIFEST).is_file()
        ]
        return sorted(out, key=lambda m: (m.created_at, m.release_id))


__all__ = [
    "DataRange",
    "Manifest",
    "ModelRegistry",
    "artifact_set_sha256",
    "sha256_bytes",
]
