"""`buckets` over a list large enough for the one-thread kernel's non-temporal output stores
(>= 2^19 keys), with keys its sixteen-key fast path must hand back to the general path
(non-ASCII, longer than sixteen bytes, str subclasses, empty) scattered through it."""

from __future__ import annotations

from autoopt.hashing import bucket, buckets
from autoopt.runtime import set_native_threads


class Key(str):
    pass


def _keys(n: int) -> list[str]:
    keys: list[str] = []
    for i in range(n):
        if i % 4099 == 7:
            keys.append("ünï-" + str(i))
        elif i % 5003 == 11:
            keys.append(f"a-much-longer-key-{i:012d}")
        elif i % 6007 == 13:
            keys.append(Key(f"sub-{i}"))
        elif i % 7001 == 17:
            keys.append("")
        else:
            keys.append(f"user-{i:0{1 + i % 11}d}")
    return keys


def test_large_list_on_one_thread_equals_one_by_one() -> None:
    keys = _keys(600_011)
    set_native_threads(1)
    try:
        got = buckets("exp-2024-pricing", keys)
    finally:
        set_native_threads(None)
    assert got.tolist() == [bucket("exp-2024-pricing", str(k)) for k in keys]
    # and on all threads, the same
    assert buckets("exp-2024-pricing", keys).tolist() == got.tolist()
