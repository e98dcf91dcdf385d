"""Model artifact registry on disk: content-addressed releases and an atomically switched `current`.

Layout::

    <root>/models/<symbol>/<release_id>/{<model files>, manifest.json}
    <root>/models/<symbol>/current -> <release_id>      (relative symlink)

- A release is written into a hidden temp dir and renamed to a hidden staged dir
  (`stage`, before a verdict names it), then renamed into place (`publish`): a release dir
  either exists complete or not at all, and each step can be redone after a crash (an existing
  copy that verifies and matches is reused); saving the same release twice is a no-op.
- `current` is switched by creating a temp symlink and `os.replace`-ing it over the old one
  (an atomic rename on POSIX): a reader always sees the old or the new release, never neither.
- A release id is the first 16 hex digits of the SHA-256 of its manifest's content, so loading
  re-derives it from ``manifest.json`` as stored: editing any field (params, features, metrics,
  model type, trainer...) is refused even when the file digests were recomputed to match.
- Loading verifies every file's SHA-256 and the artifact-set hash and, given what the log
  recorded for the release (`Recorded`, from its ``ModelReleased``), the artifact-set and
  ``manifest.json`` digests against it: the log is the authority, a local file that disagrees is
  refused with `ArtifactError`.
- `entries` lists every release with its problem, if any, so one corrupt release does not hide
  the others.

The registry does file I/O only; callers append the matching events (release, rollback) and
pass in what the log recorded.
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
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import msgspec

from autoopt.errors import ArtifactError

if TYPE_CHECKING:
    from autoopt.config import Config

MANIFEST = "manifest.json"
CURRENT = "current"
STAGED = ".staged-"
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
    trainer: str = ""
    """The plugin registry's trainer name (``"lgbm"``, ``"tft"``...) that loads the artifact;
    empty in manifests written before it was recorded (see `autoopt.plugins.trainer_id`)."""
    feature_set: str = ""
    """The feature set (plugin name) the model's columns come from; with its version, params,
    the label config and the lookback, what `autoopt.client.Champion` needs to predict from raw
    bars (empty in manifests written before they were recorded)."""
    feature_set_version: str = ""
    feature_params: dict[str, Any] = {}
    label: dict[str, Any] = {}
    """The label config the model was trained on (``kind``, ``horizon``...)."""
    lookback: int = 0
    """Bars one live prediction needs (the feature set's warm-up plus settling of its
    recursive averages); 0 where not recorded."""


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """What the event log recorded for a release (its ``ModelReleased``): the authority that the
    files on disk must match. ``manifest_sha256`` is empty for releases recorded before it was."""

    sha256: str
    manifest_sha256: str = ""


class Entry(msgspec.Struct, frozen=True):
    """One release directory as `ModelRegistry.entries` found it: its manifest when it verifies,
    else None and the problem in one line."""

    release_id: str
    manifest: Manifest | None
    problem: str | None = None


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


def manifest_bytes(manifest: Manifest) -> bytes:
    """``manifest.json`` exactly as the registry writes it (sorted keys, compact JSON)."""
    return _encoder.encode(manifest)


def derive_release_id(manifest_json: bytes) -> str:
    """The release id a stored ``manifest.json`` hashes to: SHA-256 of its content with an empty
    ``release_id``, as `ModelRegistry.prepare` computed it (generic JSON, so manifests written
    before a field existed still re-derive)."""
    doc = msgspec.json.decode(manifest_json)
    if not isinstance(doc, dict):
        raise msgspec.DecodeError("manifest is not a JSON object")
    doc["release_id"] = ""
    return sha256_bytes(msgspec.json.encode(doc, order="sorted"))[:16]


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

    def prepare(
        self,
        symbol: str,
        files: Mapping[str, bytes | os.PathLike[str]],
        *,
        model_type: str,
        created_at: int,
        trainer: str = "",
        params: Mapping[str, Any] | None = None,
        features: Sequence[str] = (),
        metrics: Mapping[str, float] | None = None,
        data_range: tuple[int, int] | DataRange,
        parent_release: str | None | EllipsisType = ...,
        feature_importances: Mapping[str, float] | None = None,
        recipe: Mapping[str, Any] | None = None,
    ) -> tuple[Manifest, dict[str, bytes]]:
        """The manifest (with its content-derived release id) and file contents of a release,
        without writing anything: a release id can be named (in a verdict) before it is saved.

        `parent_release` defaults to the symbol's current release. ``recipe``: the manifest's
        feature-set fields (``feature_set``, ``feature_set_version``, ``feature_params``,
        ``label``, ``lookback``).
        """
        if not files:
            raise ArtifactError(f"{symbol}: a release needs at least one file")
        self.symbol_dir(symbol)
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
            trainer=trainer,
            **dict(recipe or {}),
        )
        raw = _encoder.encode(body)
        rid = derive_release_id(raw)
        return _decoder.decode(_encoder.encode(msgspec.structs.replace(body, release_id=rid))), blobs

    def save(
        self, symbol: str, files: Mapping[str, bytes | os.PathLike[str]], **kw: Any
    ) -> Manifest:
        """Write a release (see `prepare` for the arguments); returns its manifest. `current` is
        not changed (see `set_current`). Saving the same content twice is the same release."""
        manifest, blobs = self.prepare(symbol, files, **kw)
        self.stage(manifest, blobs)
        return self.publish(symbol, manifest.release_id)

    def staged_dir(self, symbol: str, release_id: str) -> Path:
        """Where `stage` keeps a release until `publish` renames it into place (hidden)."""
        return self.symbol_dir(symbol) / f"{STAGED}{_check_name('release id', release_id)}"

    def stage(self, manifest: Manifest, blobs: Mapping[str, bytes]) -> Manifest:
        """Write a prepared release, hidden, before anything names it (a verdict): into a temp
        dir, fsynced, renamed to `staged_dir`. A staged or published copy that verifies and
        holds this exact manifest is reused; one that differs is refused."""
        symbol, rid = manifest.symbol, manifest.release_id
        raw = _encoder.encode(manifest)
        if derive_release_id(raw) != rid or sorted(blobs) != sorted(manifest.files):
            raise ArtifactError(f"{symbol}/{rid}: manifest and files do not belong together")
        if self.release_dir(symbol, rid).exists():
            return self._same_or_conflict(symbol, rid, raw, self.release_dir(symbol, rid))
        staged = self.staged_dir(symbol, rid)
        if staged.exists():
            return self._same_or_conflict(symbol, rid, raw, staged)
        sdir = self.symbol_dir(symbol)
        sdir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=sdir))
        try:
            for name, data in blobs.items():
                if sha256_bytes(data) != manifest.files[name]:
                    raise ArtifactError(f"{symbol}/{rid}: {name!r} does not match its digest")
                _write(tmp / name, data)
            _write(tmp / MANIFEST, raw)
            _fsync_dir(tmp)
            try:
                os.rename(tmp, staged)
            except OSError:
                if staged.exists():  # lost a race against an identical stage
                    return self._same_or_conflict(symbol, rid, raw, staged)
                raise
            _fsync_dir(sdir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return manifest

    def publish(self, symbol: str, release_id: str) -> Manifest:
        """Move a staged release into place by one atomic rename (verified first). Idempotent: a
        release already in place is verified and returned; neither staged nor in place is an
        ArtifactError."""
        final = self.release_dir(symbol, release_id)
        staged = self.staged_dir(symbol, release_id)
        if not final.exists():
            if not staged.exists():
                raise ArtifactError(
                    f"{symbol}: release {release_id} was neither staged nor published ({final})"
                )
            self._read(symbol, release_id, staged, None)
            try:
                os.rename(staged, final)
            except OSError:
                if not final.exists():
                    raise
            _fsync_dir(self.symbol_dir(symbol))
        return self.load(symbol, release_id)[0]

    def _same_or_conflict(self, symbol: str, rid: str, raw: bytes, rdir: Path) -> Manifest:
        existing, _ = self._read(symbol, rid, rdir, None)
        if manifest_bytes(existing) != raw:
            raise ArtifactError(f"{symbol}: release {rid} already exists with different content")
        return existing

    def set_current(
        self, symbol: str, release_id: str, *, recorded: Recorded | None = None
    ) -> None:
        """Point `current` at a release (verified first, against ``recorded`` when given) by
        atomic symlink replace."""
        self.load(symbol, release_id, recorded=recorded)
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
        """A release's manifest after checking it decodes, sits in its own directory and hashes
        to its release id; the files are not read (see `load`)."""
        return self._manifest(symbol, release_id, self.release_dir(symbol, release_id))[0]

    def _manifest(self, symbol: str, release_id: str, rdir: Path) -> tuple[Manifest, bytes]:
        path = rdir / MANIFEST
        where = f"{symbol}/{release_id}"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"{symbol}: release {release_id} not found ({path})") from None
        try:
            m = _decoder.decode(raw)
            derived = derive_release_id(raw)
        except msgspec.DecodeError as e:
            raise ArtifactError(
                f"{where}: {MANIFEST} is corrupt or truncated ({len(raw)} bytes): {e}"
            ) from None
        if m.release_id != release_id or m.symbol != symbol:
            raise ArtifactError(
                f"{where}: {path} names release {m.release_id!r} of {m.symbol!r}: misplaced"
            )
        if derived != release_id:
            raise ArtifactError(
                f"{where}: {MANIFEST} content hashes to release id {derived}, not {release_id}: "
                "the manifest was edited after release"
            )
        return m, raw

    def load(
        self, symbol: str, release_id: str | None = None, *, recorded: Recorded | None = None
    ) -> tuple[Manifest, dict[str, bytes]]:
        """Read a release (default: current) and verify it; ArtifactError on any mismatch.

        Checks: the manifest decodes and re-derives its release id, every file's SHA-256 and the
        artifact-set hash match it and, with ``recorded`` (what ``ModelReleased`` recorded), the
        artifact-set and ``manifest.json`` digests equal the recorded ones.
        """
        rid = release_id if release_id is not None else self.current(symbol)
        if rid is None:
            raise ArtifactError(f"{symbol}: no current release")
        return self._read(symbol, rid, self.release_dir(symbol, rid), recorded)

    def _read(
        self, symbol: str, rid: str, rdir: Path, recorded: Recorded | None
    ) -> tuple[Manifest, dict[str, bytes]]:
        m, raw = self._manifest(symbol, rid, rdir)
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
        if recorded is not None:
            if recorded.sha256 != m.sha256:
                raise ArtifactError(
                    f"{symbol}/{rid}: artifact-set SHA-256 {m.sha256} differs from the "
                    f"{recorded.sha256} recorded in ModelReleased"
                )
            if recorded.manifest_sha256 and recorded.manifest_sha256 != sha256_bytes(raw):
                raise ArtifactError(
                    f"{symbol}/{rid}: {MANIFEST} SHA-256 differs from the one recorded in "
                    "ModelReleased"
                )
        return m, blobs

    def entries(self, symbol: str) -> builtins.list[Entry]:
        """Every release dir of a symbol, each verified (`load`): good ones oldest first (by
        created_at, then id), then the ones with a problem by id."""
        sdir = self.symbol_dir(symbol)
        if not sdir.is_dir():
            return []
        good: builtins.list[Entry] = []
        bad: builtins.list[Entry] = []
        for p in sdir.iterdir():
            if p.name.startswith(".") or p.name == CURRENT or not p.is_dir():
                continue
            try:
                good.append(Entry(p.name, self.load(symbol, p.name)[0]))
            except ArtifactError as exc:
                bad.append(Entry(p.name, None, str(exc)))
        good.sort(key=lambda e: (e.manifest.created_at, e.release_id))  # type: ignore[union-attr]
        return good + sorted(bad, key=lambda e: e.release_id)

    def list(self, symbol: str) -> builtins.list[Manifest]:
        """The manifests of a symbol's releases that verify, oldest first (see `entries`)."""
        return [e.manifest for e in self.entries(symbol) if e.manifest is not None]

    def symbols(self) -> builtins.list[str]:
        """Every symbol with releases (or a folder) in the registry, sorted."""
        if not self.models.is_dir():
            return []
        return sorted(unquote(p.name) for p in self.models.iterdir()
                      if p.is_dir() and not p.name.startswith("."))

    def close(self) -> None:
        """Release what the backend holds (nothing on local disk; the NATS connection)."""

    def uri(self, symbol: str, release_id: str) -> str:
        """Where the release lives, for `ModelReleased.uri` (here: its directory)."""
        return str(self.release_dir(symbol, release_id))


def open_registry(config: Config) -> ModelRegistry:
    """The registry ``registry.backend`` names: ``local`` (the data dir) or ``nats`` (JetStream
    Object Store + KV, `autoopt.registry_nats`; the data dir is its verified cache)."""
    if config.registry.backend == "nats":
        from autoopt.registry_nats import NatsModelRegistry

        return NatsModelRegistry(config.data_dir, config.nats, bucket=config.registry.bucket,
                                 current_bucket=config.registry.current_bucket)
    return ModelRegistry(config.data_dir)


__all__ = [
    "DataRange",
    "Entry",
    "Manifest",
    "ModelRegistry",
    "Recorded",
    "artifact_set_sha256",
    "derive_release_id",
    "manifest_bytes",
    "open_registry",
    "sha256_bytes",
]
