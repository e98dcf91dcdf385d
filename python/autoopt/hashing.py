"""Stable variant assignment, compatible with GrowthBook's SDKs in every language.

`bucket(seed, key)` is GrowthBook's hash v2: FNV-1a 32-bit over the UTF-16 code units of
``seed + key``, hashed again over its decimal string, ``% 10000 / 10000``. `assign` maps the
bucket to a variant with GrowthBook's bucket ranges (``getBucketRanges`` / ``chooseVariation``).
The same inputs give the same answer in every process, machine and language; Python's salted
``hash()`` is never involved.
"""

from __future__ import annotations

from collections.abc import Sequence

from autoopt._native import assign, bucket, bucket_ranges, buckets

BucketRange = tuple[float, float]


def variant_of(seed: str, key: str, ranges: Sequence[BucketRange]) -> int | None:
    """Index of the range holding `key`'s bucket (GrowthBook ``chooseVariation``), else None."""
    b = bucket(seed, key)
    for i, (lo, hi) in enumerate(ranges):
        if lo <= b < hi:
            return i
    return None


__all__ = ["BucketRange", "assign", "bucket", "bucket_ranges", "buckets", "variant_of"]
