"""No Rust panic or abort crosses into Python: hostile inputs raise ordinary exceptions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoopt import _native
from autoopt import features as F
from autoopt.drift import ADWIN, CUSUM, PageHinkley, PSIMonitor, Welford, ks_2samp, psi
from autoopt.errors import DataError
from autoopt.hashing import bucket, buckets

CHECKPOINTED = [ADWIN, PageHinkley, CUSUM, Welford, PSIMonitor]


def test_a_rust_panic_surfaces_as_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="failed internally .*deliberate panic"):
        _native._guard_selftest()
    assert _native.bucket("a", "b") >= 0  # the interpreter is intact afterwards


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(CHECKPOINTED), st.binary(max_size=200))
def test_random_bytes_never_crash_from_bytes(cls: type, data: bytes) -> None:
    with pytest.raises(DataError):
        cls.from_bytes(data)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(CHECKPOINTED), st.integers(0, 10_000), st.integers(1, 255))
def test_bit_flipped_checkpoints_are_refused(cls: type, pos: int, mask: int) -> None:
    obj = cls(np.arange(50.0)) if cls is PSIMonitor else cls()
    if cls is not PSIMonitor:
        obj.update_many(np.sin(np.arange(200.0)))
    data = bytearray(obj.to_bytes())
    data[pos % len(data)] ^= mask
    with pytest.raises(DataError):
        cls.from_bytes(bytes(data))


def test_extreme_values_do_not_crash() -> None:
    huge = np.array([1e308, -1e308, 1e308, np.inf, -np.inf] * 20)
    ADWIN(clock=1).update_many(huge)
    PageHinkley(min_instances=1).update_many(huge)
    CUSUM(min_instances=1).update_many(huge)
    w = Welford()
    w.update_many(huge)
    assert w.count == 100
    r = ks_2samp(huge, np.zeros(10))
    assert 0.0 <= r.statistic <= 1.0
    assert psi(np.array([np.inf] * 10 + [1.0]), np.array([-np.inf, 0.0])) >= 0.0
    assert ks_2samp(np.full(5000, 3.0), np.full(7000, 3.0)).statistic == 0.0
    for fn in (F.sma, F.ema, F.rsi, F.stddev, F.zscore, F.roc, F.returns):
        out = fn(huge, 3)
        assert out.shape == huge.shape


def test_hostile_parameters_raise() -> None:
    x = np.arange(100.0)
    with pytest.raises(ValueError):
        F.sma(x, -5)
    with pytest.raises((ValueError, OverflowError)):
        F.sma(x, 2**70)
    with pytest.raises(ValueError):
        F.macd(x, 12, 26, 0)
    with pytest.raises(ValueError):
        psi(x, x, bins=10**9)
    with pytest.raises(ValueError):
        _native.fused_features({"close": x}, [("sma", [3], "close")], threads=-1)
    with pytest.raises(ValueError, match="exactly one period"):
        _native.fused_features({"close": x}, [("sma", [3, 4], "close")], 1)
    with pytest.raises(DataError, match="missing"):
        _native.fused_features({"close": x}, [("ema", [3], "open")], 1)
    with pytest.raises(ValueError):
        _native.ks_pvalue(1.5, 10, 10)
    with pytest.raises(ValueError):
        _native.bucket_ranges(-1)
    assert bucket("s", "k" * 100_000) == _native.bucket("s", "k" * 100_000)
    assert buckets("s", np.array([], dtype="<U3")).shape == (0,)


def test_period_longer_than_data_gives_all_nan() -> None:
    x = np.arange(5.0)
    for fn in (F.sma, F.ema, F.rsi, F.stddev, F.zscore, F.roc, F.returns):
        assert np.isnan(fn(x, 100)).all()
    assert all(np.isnan(a).all() for a in F.macd(x))
    assert np.isnan(F.atr(x, x, x, 100)).all()
