"""A fused 8-indicator feature set over 10M bars vs TA-Lib's separate calls and vs polars.

Run: ``python -m pytest benches/bench_features.py --benchmark-only --benchmark-columns=min,median``

Set: SMA(20), EMA(12), RSI(14), ATR(14), STDDEV(20), ROC(10), z-score(30), MACD(12, 26, 9).
TA-Lib computes each with its own call (z-score as (x - SMA) / STDDEV with NumPy). The polars
peer is the same set written as polars expressions (ewm/rolling); polars' EMA seeding differs
from TA-Lib's, so it is a cost comparison, not an equality check.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import talib

from autoopt.features import ohlcv_features

N_BARS = 10_000_000
SPEC = ["sma_20", "ema_12", "rsi_14", "atr_14", "stddev_20", "roc_10", "zscore_30", "macd_12_26_9"]


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    close = 100 + np.cumsum(rng.normal(0, 0.1, N_BARS))
    high = close + rng.uniform(0, 0.2, N_BARS)
    low = close - rng.uniform(0, 0.2, N_BARS)
    return pl.DataFrame({"high": high, "low": low, "close": close})


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


def test_fused_native(benchmark, bars: pl.DataFrame) -> None:
    benchmark.group = "8 indicators, 10M bars"
    out = benchmark.pedantic(lambda: ohlcv_features(bars, SPEC), rounds=5, iterations=1)
    assert out.width == 10 and out.height == N_BARS


def test_talib_separate_calls(benchmark, bars: pl.DataFrame) -> None:
    benchmark.group = "8 indicators, 10M bars"
    h, lo, c = (bars[k].to_numpy() for k in ("high", "low", "close"))
    out = benchmark.pedantic(lambda: _talib_set(h, lo, c), rounds=5, iterations=1)
    assert len(out) == 10


def test_polars_expressions(benchmark, bars: pl.DataFrame) -> None:
    benchmark.group = "8 indicators, 10M bars"
    out = benchmark.pedantic(lambda: _polars_set(bars), rounds=3, iterations=1)
    assert out.width == 10
