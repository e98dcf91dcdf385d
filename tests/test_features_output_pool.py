"""Large indicator outputs reuse the buffers of outputs nobody holds any more (`features/pool.rs`).

What must hold: an output is never written while anything (the array, a view, a polars frame
built on it) still refers to it; a reused buffer gives the same values as a fresh one; the pool
can be emptied; small outputs are plain numpy arrays.
"""

from __future__ import annotations

import gc

import numpy as np
import polars as pl
import pytest

from autoopt import _native
from autoopt.features import ohlcv_features, sma

N = 300_000  # 2.4 MB per output: above the pool's 1 MiB floor
SPEC = ["sma_20", "ema_12", "rsi_14", "atr_14", "stddev_20", "roc_10", "zscore_30", "macd_12_26_9"]


def _bars(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 0.1, n))
    return pl.DataFrame(
        {"high": close + rng.uniform(0, 0.2, n), "low": close - rng.uniform(0, 0.2, n), "close": close}
    )


@pytest.fixture(autouse=True)
def _empty_pool():
    gc.collect()
    _native.release_output_buffers()
    yield
    gc.collect()
    _native.release_output_buffers()


def _bits(df: pl.DataFrame) -> dict[str, np.ndarray]:
    return {c: df[c].to_numpy().view(np.int64).copy() for c in df.columns}


def test_reused_buffers_give_the_same_values_and_are_never_shared():
    a_bars, b_bars = _bars(N, 1), _bars(N, 2)
    first = ohlcv_features(a_bars, SPEC)
    want_a = _bits(first)
    del first
    gc.collect()
    assert _native.output_buffers_kept()[0] == 10
    # computed into the kept buffers: same values as on fresh memory
    b = ohlcv_features(b_bars, SPEC)
    assert _native.output_buffers_kept()[0] == 0
    _native.release_output_buffers()
    fresh_b = _bits(ohlcv_features(b_bars, SPEC))
    assert {c: np.array_equal(v, fresh_b[c]) for c, v in _bits(b).items()} == dict.fromkeys(fresh_b, True)
    # `b` is alive: another call must not write into its memory
    c = ohlcv_features(a_bars, SPEC)
    assert all(np.array_equal(v, want_a[k]) for k, v in _bits(c).items())
    assert all(np.array_equal(v, fresh_b[k]) for k, v in _bits(b).items())


def test_a_view_keeps_its_buffer_out_of_the_pool():
    x = _bars(N, 3)["close"].to_numpy()
    out = sma(x, 20)
    view = out[100:]
    want = view.copy()
    del out
    gc.collect()
    assert _native.output_buffers_kept() == (0, 0)
    other = sma(x[::-1].copy(), 5)
    assert not np.shares_memory(other, view)
    assert np.array_equal(view, want, equal_nan=True)
    del view
    gc.collect()
    assert _native.output_buffers_kept() == (1, N * 8)
    assert other.shape == (N,)


def test_release_and_small_outputs():
    out = sma(np.arange(N, dtype=np.float64), 3)
    assert out.base is not None and out.flags.writeable and out.flags.c_contiguous
    del out
    gc.collect()
    assert _native.release_output_buffers() == N * 8
    assert _native.output_buffers_kept() == (0, 0)
    small = sma(np.arange(1000, dtype=np.float64), 3)
    assert small.base is None and small.flags.owndata
