"""A fused 8-indicator feature set over 10M bars vs TA-Lib's separate calls and vs polars.

Run: ``python -m pytest benches/bench_features.py --benchmark-only --benchmark-columns=min,median``
(the native side once pinned to one thread, once on all: ``AUTOOPT_THREADS``), or as part of
``make bench-report`` (`WORKLOADS`, per-core ratios in benches/RESULTS.md).

Set: SMA(20), EMA(12), RSI(14), ATR(14), STDDEV(20), ROC(10), z-score(30), MACD(12, 26, 9).
TA-Lib computes each with its own call (z-score as (x - SMA) / STDDEV with NumPy); TA-Lib is
single-threaded. The polars peer is the same set written as polars expressions (ewm/rolling),
on polars' own thread pool (all cores by default); polars' EMA seeding differs from TA-Lib's,
so it is a cost comparison, not an equality check.

Every round after the first writes our ten 80 MB outputs into the buffers of the previous
round's outputs (freed when the round drops its frame): outputs of 1 MiB or more reuse the
memory of outputs nobody holds any more (`rust/src/py/features/pool.rs`), so the kernel's
zeroing of fresh pages (~6.5 ms per 80 MB on the 2-vCPU hosts) is paid once, as polars'
jemalloc does for its own. A first call on a cold process still pays it.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import talib

from autoopt.features import ohlcv_features
from percore import Workload, pinned

N_BARS = 10_000_000
SPEC = ["sma_20", "ema_12", "rsi_14", "atr_14", "stddev_20", "roc_10", "zscore_30", "macd_12_26_9"]


def make_bars(n: int = N_BARS) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    close = 100 + np.cumsum(rng.normal(0, 0.1, n))
    high = close + rng.uniform(0, 0.2, n)
    low = close - rng.uniform(0, 0.2, n)
    return pl.DataFrame({"high": high, "low": low, "close": close})


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return make_bars()


def _talib_set(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> list[np.ndarray]:
    sma30 = talib.SMA(c, 30)
    sd30 = talib.STDDEV(c, 30, 1)
    return [
        talib.SMA(c, 20),
        talib.EMA(c, 12),
        talib.RSI(c, 14),
        talib.ATR(h, lo, c, 14),
        talib.STDDEV(c, 20, 1),
        talib.ROC(c, 10),
        (c - sma30) / sd30,
        *talib.MACD(c, 12, 26, 9),
    ]


def _polars_set(df: pl.DataFrame) -> pl.DataFrame:
    c, h, lo = pl.col("close"), pl.col("high"), pl.col("low")
    d = c.diff()
    prev = c.shift(1)
    tr = pl.max_horizontal(h - lo, (h - prev).abs(), (lo - prev).abs())
    gain = d.clip(lower_bound=0).ewm_mean(alpha=1 / 14, adjust=False)
    loss = (-d).clip(lower_bound=0).ewm_mean(alpha=1 / 14, adjust=False)
    macd = c.ewm_mean(span=12, adjust=False) - c.ewm_mean(span=26, adjust=False)
    signal = macd.ewm_mean(span=9, adjust=False)
    return df.select(
        c.rolling_mean(20).alias("sma_20"),
        c.ewm_mean(span=12, adjust=False).alias("ema_12"),
        (100 * gain / (gain + loss)).alias("rsi_14"),
        tr.ewm_mean(alpha=1 / 14, adjust=False).alias("atr_14"),
        c.rolling_std(20, ddof=0).alias("stddev_20"),
        (c.pct_change(10) * 100).alias("roc_10"),
        ((c - c.rolling_mean(30)) / c.rolling_std(30, ddof=0)).alias("zscore_30"),
        macd.alias("macd"),
        signal.alias("macd_signal"),
        (macd - signal).alias("macd_hist"),
    )


def _talib_inputs(df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return df["high"].to_numpy(), df["low"].to_numpy(), df["close"].to_numpy()


def _same_as_talib(data: pl.DataFrame, ours: pl.DataFrame, peer: list[np.ndarray]) -> None:
    for name, want in zip(ours.columns, peer, strict=True):
        got = ours[name].to_numpy()
        ok = ~np.isnan(want)
        assert np.array_equal(np.isnan(got), ~ok), name
        assert np.allclose(got[ok], want[ok], rtol=1e-9, atol=1e-9), name


WORKLOADS = [
    Workload(
        name="fused 8 indicators, 10M bars",
        peer_name=f"TA-Lib {talib.__version__}, one call per indicator",
        peer_threads="1 (TA-Lib is single-threaded)",
        setup=make_bars,
        ours=lambda df: ohlcv_features(df, SPEC),
        peer=lambda df: _talib_set(*_talib_inputs(df)),
        goal=1.5,
        check=_same_as_talib,
    ),
    Workload(
        name="fused 8 indicators, 10M bars",
        peer_name=f"polars {pl.__version__} expressions",
        peer_threads=f"{pl.thread_pool_size()} (polars' pool, its default)",
        setup=make_bars,
        ours=lambda df: ohlcv_features(df, SPEC),
        peer=_polars_set,
        goal=5.0,
    ),
]


@pytest.mark.parametrize("threads", [1, None], ids=["1-thread", "all-threads"])
def test_fused_native(benchmark, bars: pl.DataFrame, threads: int | None) -> None:
    benchmark.group = "8 indicators, 10M bars"
    with pinned(threads):
        out = benchmark.pedantic(lambda: ohlcv_features(bars, SPEC), rounds=5, iterations=1)
    assert out.width == 10 and out.height == N_BARS


def test_talib_separate_calls(benchmark, bars: pl.DataFrame) -> None:
    benchmark.group = "8 indicators, 10M bars"
    h, lo, c = _talib_inputs(bars)
    out = benchmark.pedantic(lambda: _talib_set(h, lo, c), rounds=5, iterations=1)
    assert len(out) == 10


def test_polars_expressions(benchmark, bars: pl.DataFrame) -> None:
    benchmark.group = "8 indicators, 10M bars"
    out = benchmark.pedantic(lambda: _polars_set(bars), rounds=3, iterations=1)
    assert out.width == 10
