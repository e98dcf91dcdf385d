"""A bounded on-disk spool of encoded events: what the engine produced while NATS was down.

Why: a trading engine must not lose its signals and outcomes (the A/B statistics and the
degradation policy are built from them) because the log was unreachable for a minute, and it must
not grow without bound either. Batches that could not be stored go here, in order, and are sent
again (oldest first) once the log answers; JetStream dedups by event id, so a batch that was in
fact stored before the failure is not stored twice.

Layout: ``<dir>/<number>.spool`` segments of records ``u32 little-endian length + msgpack
event``, each write flushed and fsynced before it returns (a crash loses nothing written; a torn
last record is skipped and counted). A new process opening the same directory sends what an
earlier one left. Bound: ``max_bytes`` over all segments; a write past it raises `SpoolFull`, and
the engine then holds its producers (backpressure) instead of dropping anything.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from autoopt.errors import AutooptError

_LEN = struct.Struct("<I")
SUFFIX = ".spool"


class SpoolFull(AutooptError):
    """The spool reached its byte bound."""


class Spool:
    """Append batches; read and remove the oldest segment (see module doc)."""

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int = 256 << 20,
                 segment_bytes: int = 4 << 20) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self.segment_bytes = int(segment_bytes)
        self.torn = 0
        """Records skipped because a crash tore them (a write that never returned)."""
        self._segments = sorted(self.dir.glob(f"*{SUFFIX}"), key=lambda p: int(p.stem))
        self.bytes = sum(p.stat().st_size for p in self._segments)
        self._next = int(self._segments[-1].stem) + 1 if self._segments else 0
        self._open: Path | None = None  # the segment being appended to (never the one read)

    def __len__(self) -> int:
        return len(self._segments)

    @property
    def empty(self) -> bool:
        return not self._segments

    def write(self, payloads: list[bytes]) -> None:
        """Append encoded events durably (fsynced), or raise SpoolFull (nothing written)."""
        size = sum(_LEN.size + len(p) for p in payloads)
        if self.bytes + size > self.max_bytes:
            raise SpoolFull(
                f"engine spool {self.dir} holds {self.bytes} bytes; {size} more would pass its "
                f"bound of {self.max_bytes}"
            )
        path = self._open
        if path is None or path.stat().st_size >= self.segment_bytes:
            path = self._open = self.dir / f"{self._next:012d}{SUFFIX}"
            self._next += 1
            self._segments.append(path)
        with open(path, "ab") as f:
            f.write(b"".join(_LEN.pack(len(p)) + p for p in payloads))
            f.flush()
            os.fsync(f.fileno())
        self.bytes += size

    def oldest(self) -> tuple[Path, list[bytes]] | None:
        """The oldest segment and its records (it is closed for appends from now on)."""
        if not self._segments:
            return None
        path = self._segments[0]
        if path == self._open:
            self._open = None
        data = path.read_bytes()
        out: list[bytes] = []
        pos = 0
        while pos + _LEN.size <= len(data):
            (n,) = _LEN.unpack_from(data, pos)
            if pos + _LEN.size + n > len(data):
                break
            out.append(data[pos + _LEN.size : pos + _LEN.size + n])
            pos += _LEN.size + n
        if pos != len(data):
            self.torn += 1
        return path, out

    def remove(self, path: Path) -> None:
        """Drop a segment whose records are all stored."""
        size = path.stat().st_size if path.exists() else 0
        path.unlink(missing_ok=True)
        self._segments.remove(path)
        self.bytes -= size

    def replace(self, path: Path, payloads: list[bytes]) -> None:
        """Keep only ``payloads`` of an oldest segment (the rest were stored)."""
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(b"".join(_LEN.pack(len(p)) + p for p in payloads))
            f.flush()
            os.fsync(f.fileno())
        old = path.stat().st_size
        os.replace(tmp, path)
        self.bytes += path.stat().st_size - old


__all__ = ["Spool", "SpoolFull"]
