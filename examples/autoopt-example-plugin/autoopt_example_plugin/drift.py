"""Drift detector ``example_cusum``: a two-sided CUSUM on standardised values, written against
autoopt's `DriftDetectorFactory` interface (``create``, ``from_bytes``; the detector has
``update`` and ``to_bytes``).

The first ``warmup`` values fix the reference mean and standard deviation; after that every
value ``z = (x - mean) / std`` feeds ``s_hi = max(0, s_hi + z - k)`` and
``s_lo = max(0, s_lo - z - k)``, and the detector fires when either passes ``h``. autoopt then
starts a fresh detector (a new reference), so one change fires once.

Its state is JSON (never a pickle): Python's float repr round-trips exactly, so a detector
restored from a checkpoint continues bit for bit, and replays decide the same.
"""

from __future__ import annotations

import json
import math
from typing import Any

_FIELDS = ("warmup", "k", "h", "n", "mean", "m2", "s_hi", "s_lo")


class Cusum:
    """One stream's detector (see the module doc)."""

    def __init__(self, warmup: int = 30, k: float = 0.5, h: float = 5.0) -> None:
        if int(warmup) < 2 or k < 0 or h <= 0:
            raise ValueError(f"need warmup >= 2, k >= 0, h > 0; got {warmup}, {k}, {h}")
        self.warmup, self.k, self.h = int(warmup), float(k), float(h)
        self.n, self.mean, self.m2, self.s_hi, self.s_lo = 0, 0.0, 0.0, 0.0, 0.0

    def update(self, x: float) -> bool:
        if self.n < self.warmup:  # Welford: the reference mean and variance
            self.n += 1
            delta = x - self.mean
            self.mean += delta / self.n
            self.m2 += delta * (x - self.mean)
            return False
        std = math.sqrt(self.m2 / (self.warmup - 1)) or 1e-12
        z = (x - self.mean) / std
        self.s_hi = max(0.0, self.s_hi + z - self.k)
        self.s_lo = max(0.0, self.s_lo - z - self.k)
        return self.s_hi > self.h or self.s_lo > self.h

    def to_bytes(self) -> bytes:
        return json.dumps({f: getattr(self, f) for f in _FIELDS}, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Cusum:
        state: dict[str, Any] = json.loads(data)
        det = cls(state["warmup"], state["k"], state["h"])
        for f in _FIELDS[3:]:
            setattr(det, f, state[f])
        return det


class CusumFactory:
    """``[policy.drift.params.example_cusum]`` takes ``warmup``, ``k`` and ``h``."""

    name = "example_cusum"

    def create(self, **params: Any) -> Cusum:
        return Cusum(**params)

    def from_bytes(self, data: bytes) -> Cusum:
        return Cusum.from_bytes(data)
