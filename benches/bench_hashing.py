"""Variant bucketing of 1M unit keys vs a Python loop over mmh3.hash.

Run: ``python -m pytest benches/bench_hashing.py --benchmark-only --benchmark-columns=min,median``
(the native side once pinned to one thread, once on all: ``AUTOOPT_THREADS``), or as part of
``make bench-report`` (`WORKLOADS`, per-core ratios in benches/RESULTS.md).

The peer computes the same thing a user would write without us: a bucket in [0, 1) per key
from a fast C hash called in a Python loop. Both take the same Python list of str; the numpy
fixed-width unicode input (no str objects) is measured too. The peer runs on one thread (a
Python loop holds the GIL).

Ours reads each key's text in place from its str object; with AVX-512, blocks of keys of at
most sixteen bytes are hashed sixteen keys per register (every byte, masked per lane), other
blocks eight keys per SIMD step (the bytes a group of keys shares once); then GrowthBook's
second pass over the first hash's decimal digits eight or sixteen keys per step, an output of
4 MB or more written with non-temporal stores (`rust/src/kernels/hashing.rs`). At 1M keys the
one-thread time is about two thirds arithmetic and one third waiting for the keys (a 64-byte
object each: 64 MB); see the notes under the per-core table in benches/RESULTS.md.
"""

from __future__ import annotations

from importlib.metadata import version

import mmh3
import numpy as np
import pytest

from autoopt.hashing import buckets
from percore import Workload, pinned

N_KEYS = 1_000_000
SEED = "exp-2024-pricing"


def make_keys() -> list[str]:
    return [f"user-{i:08d}" for i in range(N_KEYS)]


@pytest.fixture(scope="module")
def keys() -> list[str]:
    return make_keys()


def _mmh3_buckets(seed: str, keys: list[str]) -> np.ndarray:
    return np.array([(mmh3.hash(seed + k, signed=False) % 10000) / 10000 for k in keys])


WORKLOADS = [
    Workload(
        name="variant buckets, 1M keys (list of str)",
        peer_name=f"mmh3 {version('mmh3')} in a Python loop",
        peer_threads="1 (Python loop, GIL held)",
        setup=make_keys,
        ours=lambda keys: buckets(SEED, keys),
        peer=lambda keys: _mmh3_buckets(SEED, keys),
        goal=30.0,
    ),
]


@pytest.mark.parametrize("threads", [1, None], ids=["1-thread", "all-threads"])
def test_buckets_native_list(benchmark, keys: list[str], threads: int | None) -> None:
    benchmark.group = "buckets, 1M keys"
    with pinned(threads):
        out = benchmark(lambda: buckets(SEED, keys))
    assert out.shape == (N_KEYS,)


@pytest.mark.parametrize("threads", [1, None], ids=["1-thread", "all-threads"])
def test_buckets_native_numpy_unicode(benchmark, keys: list[str], threads: int | None) -> None:
    benchmark.group = "buckets, 1M keys"
    arr = np.array(keys)
    with pinned(threads):
        out = benchmark(lambda: buckets(SEED, arr))
    assert np.array_equal(out, buckets(SEED, keys))


def test_buckets_python_mmh3_loop(benchmark, keys: list[str]) -> None:
    benchmark.group = "buckets, 1M keys"
    out = benchmark.pedantic(lambda: _mmh3_buckets(SEED, keys), rounds=3, iterations=1)
    assert out.shape == (N_KEYS,)
