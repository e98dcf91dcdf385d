"""GrowthBook-compatible hashing: published SDK cases, reference implementation, stability."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoopt.hashing import assign, bucket, bucket_ranges, buckets, variant_of

# GrowthBook SDK spec, cases.json "hash" section: [seed, value, version, expected bucket].
GROWTHBOOK_HASH_CASES = [
    ("", "a", 1, 0.22),
    ("", "b", 1, 0.077),
    ("b", "a", 1, 0.946),
    ("ef", "d", 1, 0.652),
    ("asdf", "8952klfjas09ujk", 1, 0.549),
    ("", "123", 1, 0.011),
    ("", '___)((*":&', 1, 0.563),
    ("seed", "a", 2, 0.0505),
    ("seed", "b", 2, 0.2696),
    ("foo", "ab", 2, 0.2575),
    ("foo", "def", 2, 0.2019),
    ("89123klj", "8952klfjas09ujkasdf", 2, 0.124),
    ("90850943850283058242805", "123", 2, 0.7516),
    ("()**(%$##$%#$#", '___)((*":&', 2, 0.0128),
]

# cases.json "getBucketRange": [name, [numVariations, coverage, weights], expected ranges]
GROWTHBOOK_RANGE_CASES = [
    ("normal 50/50", (2, 1, None), [(0, 0.5), (0.5, 1)]),
    ("reduced coverage", (2, 0.5, None), [(0, 0.25), (0.5, 0.75)]),
    ("zero coverage", (2, 0, None), [(0, 0), (0.5, 0.5)]),
    ("4 variations", (4, 1, None), [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
    ("uneven weights", (2, 1, [0.4, 0.6]), [(0, 0.4), (0.4, 1)]),
    ("uneven weights, 3 variations", (3, 1, [0.2, 0.3, 0.5]), [(0, 0.2), (0.2, 0.5), (0.5, 1)]),
    ("uneven, reduced coverage", (3, 0.2, [0.2, 0.3, 0.5]), [(0, 0.04), (0.2, 0.26), (0.5, 0.6)]),
    ("negative coverage", (2, -0.2, None), [(0, 0), (0.5, 0.5)]),
    ("coverage above 1", (2, 1.5, None), [(0, 0.5), (0.5, 1)]),
    ("weights sum below 1", (2, 1, [0.4, 0.1]), [(0, 0.5), (0.5, 1)]),
    ("weights sum above 1", (2, 1, [0.7, 0.6]), [(0, 0.5), (0.5, 1)]),
    ("weights.length != n", (4, 1, [0.4, 0.4, 0.2]), [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
    ("weights sum almost 1", (2, 1, [0.4, 0.5999]), [(0, 0.4), (0.4, 0.9999)]),
]


def _fnv1a32_utf16(s: str) -> int:
    """Reference FNV-1a 32 over UTF-16 code units, as JavaScript's charCodeAt sees a string."""
    h = 0x811C9DC5
    data = s.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        h ^= data[i] | (data[i + 1] << 8)
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def _ref_bucket(seed: str, key: str) -> float:
    return (_fnv1a32_utf16(str(_fnv1a32_utf16(seed + key))) % 10000) / 10000


@pytest.mark.parametrize(("seed", "key", "version", "want"), GROWTHBOOK_HASH_CASES)
def test_growthbook_published_hash_cases(seed: str, key: str, version: int, want: float) -> None:
    assert bucket(seed, key, version) == want
    assert buckets(seed, [key], version).tolist() == [want]


def test_unknown_hash_version_is_refused() -> None:
    # cases.json: ["abc", "def", 99, null]; an SDK returns null, we raise.
    with pytest.raises(ValueError, match="version"):
        bucket("abc", "def", 99)


@pytest.mark.parametrize(("name", "args", "want"), GROWTHBOOK_RANGE_CASES)
def test_growthbook_bucket_range_cases(name: str, args: tuple, want: list) -> None:
    n, coverage, weights = args
    got = bucket_ranges(n, coverage, weights)
    assert len(got) == len(want), name
    for (a, b), (c, d) in zip(got, want, strict=True):
        assert a == pytest.approx(c, abs=1e-12) and b == pytest.approx(d, abs=1e-12), name


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12), st.text(max_size=24))
def test_bucket_equals_reference_and_is_stable(seed: str, key: str) -> None:
    b = bucket(seed, key)
    assert 0.0 <= b < 1.0
    assert b == _ref_bucket(seed, key)
    assert bucket(seed, key) == b  # deterministic


def test_non_ascii_and_surrogates_use_utf16_units() -> None:
    for key in ["é", "日本語", "😀", "a😀b", "\ud800", "mixed-ß-✓"]:
        assert bucket("s", key) == _ref_bucket("s", key)


def test_buckets_over_every_input_form() -> None:
    keys = [f"user-{i}" for i in range(500)] + ["ünï", "😀x"]
    want = [bucket("exp", k) for k in keys]
    assert buckets("exp", keys).tolist() == want
    assert buckets("exp", tuple(keys)).tolist() == want
    assert buckets("exp", np.array(keys)).tolist() == want  # fixed-width unicode fast path
    assert buckets("exp", np.array(keys, dtype=object)).tolist() == want
    assert buckets("exp", pl.Series(keys)).tolist() == want
    assert buckets("exp", (k for k in keys)).tolist() == want
    assert buckets("exp", keys, version=1).tolist() == [bucket("exp", k, 1) for k in keys]
    assert buckets("exp", []).shape == (0,)


def test_buckets_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match="str"):
        buckets("exp", ["a", 3])
    with pytest.raises(TypeError, match="single str"):
        buckets("exp", "abc")
    with pytest.raises(TypeError, match="seed must be str"):
        bucket(1, "a")  # type: ignore[arg-type]


def test_assign_follows_bucket_ranges() -> None:
    weights = [0.2, 0.3, 0.5]
    ranges = bucket_ranges(3, 1.0, weights)
    for i in range(300):
        key = f"unit-{i}"
        assert assign("pricing", key, weights) == variant_of("pricing", key, ranges)
    # coverage 0.5 leaves units whose bucket falls in a range's upper half unassigned
    outside = [k for k in (f"u{i}" for i in range(400)) if assign("s", k, [0.5, 0.5], 0.5) is None]
    for k in outside:
        b = bucket("s", k)
        assert 0.25 <= b < 0.5 or 0.75 <= b
    assert 100 < len(outside) < 300


def test_assign_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        assign("s", "k", [0.5, 0.2])
    with pytest.raises(ValueError, match="at least one"):
        assign("s", "k", [])
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        assign("s", "k", [1.5, -0.5])
    with pytest.raises(ValueError, match="coverage"):
        assign("s", "k", [1.0], coverage=1.5)


def test_buckets_identical_across_processes_and_hash_seeds() -> None:
    """Python's salted hash() must play no part: a fresh interpreter agrees exactly."""
    code = "from autoopt.hashing import buckets; print(buckets('exp', ['a', 'b', 'user-42']).tolist())"
    here = buckets("exp", ["a", "b", "user-42"]).tolist()
    for hash_seed in ["0", "12345"]:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == str(here)


def test_buckets_of_a_large_list_read_in_place_on_threads() -> None:
    """Large lists are read in place and split across threads; keys the in-place reader must
    leave to the C API (non-ASCII text, str subclasses) are found wherever they fall, and a
    non-str key is still refused by name."""

    class Key(str):
        pass

    keys = [
        f"user-{i:08d}" if i % 997 else ("ünï-" + str(i) if i % 2 else Key(f"sub-{i}"))
        for i in range(150_001)
    ]
    keys[75_001] = keys[75_000]  # one object on both sides of the two-thread split
    assert buckets("exp", keys).tolist() == [bucket("exp", str(k)) for k in keys]
    with pytest.raises(TypeError, match="NoneType"):
        buckets("exp", [*keys[:100_000], None])


def test_numpy_unicode_rows_equal_one_by_one() -> None:
    # property test of the `<U` array path (rows packed to bytes and hashed eight at a time
    # when ASCII, one by one otherwise): pseudo-random keys of lengths 0..40 mixing ASCII, NUL
    # inside a key, non-ASCII, astral and lone-surrogate code points; more rows than one packed
    # block, neighbours sharing prefixes; numpy strips trailing NULs, so the reference is the
    # text numpy gives back
    rng = random.Random(20)
    pool = [chr(c) for c in range(1, 128)] + ["\x00", "é", "日", "😀", "\ud800"]
    keys = []
    for i in range(9_000):
        if i % 3 == 0:
            keys.append(f"user-{i:08d}")
        else:
            n = rng.randrange(41)
            ascii_only = rng.random() < 0.8
            keys.append("".join(rng.choice(pool[:127] if ascii_only else pool) for _ in range(n)))
    arr = np.array(keys)
    assert arr.dtype.kind == "U"
    want = [bucket("exp", k) for k in arr.tolist()]
    assert buckets("exp", arr).tolist() == want
    assert buckets("exp", arr[:13]).tolist() == want[:13]
