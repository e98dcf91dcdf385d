"""Indicators against TA-Lib and polars in the same run; fused pass; polars namespace."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import talib

from autoopt import _native
from autoopt import features as F
from autoopt.errors import DataError


def _ohlc(seed: int, n: int = 3000, lead_nan: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    high = close + rng.uniform(0, 2, n)
    low = close - rng.uniform(0, 2, n)
    for a in (close, high, low):
        a[:lead_nan] = np.nan
    return high, low, close


def _same(got: np.ndarray, want: np.ndarray, rtol: float = 1e-9) -> None:
    assert got.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=rtol, atol=1e-12)


def _same_std(got: np.ndarray, want: np.ndarray, x: np.ndarray) -> None:
    """STDDEV within 1e-9 relative, or within TA-Lib's own rounding of the variance.

    TA-Lib 0.8 computes the variance with an absolute error of a few ulp of x**2; where the
    window's spread is tiny against its level (random-walk steps near zero), that error is
    more than 1e-9 of the result, so the comparison is made on the variance at that scale.
    """
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    level = np.nanmax(np.abs(x)) ** 2
    dv = np.abs(got[ok] ** 2 - want[ok] ** 2)
    assert np.all(dv <= 1e-9 * want[ok] ** 2 + 64 * np.finfo(float).eps * level)


def _window_std(x: np.ndarray, p: int) -> np.ndarray:
    """Exact-as-possible reference: two-pass population std over each window."""
    out = np.full(len(x), np.nan)
    w = np.lib.stride_tricks.sliding_window_view(x, p)
    out[p - 1 :] = np.sqrt(((w - w.mean(axis=1, keepdims=True)) ** 2).mean(axis=1))
    return out


CASES = [(0, 3000, 0), (1, 500, 7), (2, 60, 0)]


@pytest.mark.parametrize(("seed", "n", "lead"), CASES)
@pytest.mark.parametrize("period", [1, 2, 5, 14, 30, 100])
def test_single_input_indicators_match_talib(seed: int, n: int, lead: int, period: int) -> None:
    _, _, x = _ohlc(seed, n, lead)
    _same(F.sma(x, period), talib.SMA(x, period))
    _same(F.ema(x, period), talib.EMA(x, period))
    _same(F.roc(x, period), talib.ROC(x, period))
    _same(F.returns(x, period), talib.ROCP(x, period))
    if period >= 2:
        _same(F.rsi(x, period), talib.RSI(x, period))
        _same_std(F.stddev(x, period), talib.STDDEV(x, period, 1), x)
        sd = F.stddev(x, period)
        z = np.where(sd > 0, (x - talib.SMA(x, period)) / np.where(sd > 0, sd, 1), np.nan)
        _same(F.zscore(x, period), z)


@pytest.mark.parametrize(("seed", "n", "lead"), CASES)
@pytest.mark.parametrize("period", [1, 2, 14, 50])
def test_atr_matches_talib(seed: int, n: int, lead: int, period: int) -> None:
    h, lo, c = _ohlc(seed, n, lead)
    _same(F.atr(h, lo, c, period), talib.ATR(h, lo, c, period))


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5), (26, 12, 9), (3, 3, 1)])
def test_macd_matches_talib(fast: int, slow: int, signal: int) -> None:
    for seed, n, lead in CASES:
        _, _, x = _ohlc(seed, n, lead)
        got = F.macd(x, fast, slow, signal)
        want = talib.MACD(x, fast, slow, signal)
        for g, w in zip(got, want, strict=True):
            _same(g, w)
    assert np.isnan(F.macd(_ohlc(0)[2])[0][:33]).all() and not np.isnan(F.macd(_ohlc(0)[2])[0][33])


def test_stddev_is_accurate_far_from_zero() -> None:
    """Large level, small spread: naive sums of squares would cancel; ours stays exact."""
    for p in (2, 5, 20):
        x = 1e6 + np.random.default_rng(p).normal(0, 1e-3, 2000)
        _same(F.stddev(x, p), _window_std(x, p), rtol=1e-9)
        _same_std(F.stddev(x, p), talib.STDDEV(x, p, 1), x)


def test_stddev_and_zscore_stay_accurate_after_level_jumps() -> None:
    """A jump of the level (and back) must not leave the running sums cancelling."""
    rng = np.random.default_rng(5)
    level = np.repeat([100.0, 1e6, 3.0, -2e5, 100.0], 1500)
    x = level + rng.normal(0, 1e-2, level.size)
    for p in (2, 20, 30):
        _same(F.stddev(x, p), _window_std(x, p), rtol=1e-9)
        # against the exact window mean (TA-Lib's running SMA keeps the rounding of the 1e6
        # level for the rest of the series; ours is recomputed from the window)
        sd = _window_std(x, p)
        mean = np.full(x.size, np.nan)
        mean[p - 1 :] = np.lib.stride_tricks.sliding_window_view(x, p).mean(axis=1)
        want = (x - mean) / sd
        got = F.zscore(x, p)
        ok = ~np.isnan(want)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        assert np.all(np.abs(got[ok] - want[ok]) <= 1e-9 * np.abs(want[ok]) + 1e-12 * np.abs(x[ok]) / sd[ok])


def test_nan_inside_series_propagates_like_talib() -> None:
    _, _, x = _ohlc(4, 300)
    x[150] = np.nan
    _same(F.ema(x, 10), talib.EMA(x, 10))
    _same(F.rsi(x, 10), talib.RSI(x, 10))
    _same(F.sma(x, 10), talib.SMA(x, 10))
    _same(F.roc(x, 3), talib.ROC(x, 3))
    _same_std(F.stddev(x, 10), talib.STDDEV(x, 10, 1), x)
    for g, w in zip(F.macd(x), talib.MACD(x), strict=True):
        _same(g, w)
    h, lo = x + 1, x - 1
    _same(F.atr(h, lo, x, 5), talib.ATR(h, lo, x, 5))


def test_short_and_empty_inputs_like_talib() -> None:
    x = np.array([1.0, 2.0, 3.0])
    assert np.isnan(F.sma(x, 5)).all()
    assert F.ema(np.array([], dtype=float), 3).shape == (0,)
    assert talib.SMA(np.array([], dtype=float), 3).shape == (0,)


def test_sma_matches_polars_rolling_mean() -> None:
    _, _, x = _ohlc(5)
    s = pl.Series("close", x)
    want = s.rolling_mean(20).to_numpy()
    _same(F.sma(s, 20), want, rtol=1e-9)


def test_inputs_are_zero_copy_when_possible() -> None:
    x = np.linspace(0.0, 1.0, 100)
    assert _native.as_float64(x) is x
    s = pl.Series("x", x)
    assert np.shares_memory(_native.as_float64(s), s.to_numpy())
    ints = np.arange(10, dtype=np.int32)
    conv = _native.as_float64(ints)
    assert conv.dtype == np.float64 and conv.tolist() == list(range(10))
    strided = np.arange(20.0)[::2]
    assert _native.as_float64(strided).flags.c_contiguous
    _same(F.sma(pl.Series([1, 2, 3, 4], dtype=pl.Int64), 2), np.array([np.nan, 1.5, 2.5, 3.5]))


def test_bad_inputs_raise_clear_errors() -> None:
    x = np.arange(10.0)
    with pytest.raises(ValueError, match=r"period must be an integer in \[1, 100000\], got 0"):
        F.sma(x, 0)
    with pytest.raises(ValueError, match="period"):
        F.rsi(x, 1)
    with pytest.raises(ValueError, match="period"):
        F.ema(x, 10**9)
    with pytest.raises(TypeError):
        F.ema(x, 2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="numeric"):
        F.sma(np.array(["a", "b"]), 2)
    with pytest.raises(TypeError, match="numeric"):
        F.sma(pl.Series(["a", "b"]), 2)
    with pytest.raises(ValueError, match="1-D"):
        F.sma(np.ones((3, 3)), 2)
    with pytest.raises(DataError, match="same length"):
        F.atr(x, x[:5], x, 3)


SPEC = ["sma_20", "ema_12", "rsi_14", "atr_14", "stddev_20", "roc_10", "zscore_30", "macd_12_26_9"]


def test_ohlcv_features_equals_single_functions() -> None:
    h, lo, c = _ohlc(6, 5000, 3)
    df = pl.DataFrame({"open": c, "high": h, "low": lo, "close": c})
    out = F.ohlcv_features(df, SPEC)
    assert out.columns == ["sma_20", "ema_12", "rsi_14", "atr_14", "stddev_20", "roc_10", "zscore_30",
                           "macd_12_26_9", "macd_12_26_9_signal", "macd_12_26_9_hist"]
    singles = {
        "sma_20": F.sma(c, 20), "ema_12": F.ema(c, 12), "rsi_14": F.rsi(c, 14),
        "atr_14": F.atr(h, lo, c, 14), "stddev_20": F.stddev(c, 20), "roc_10": F.roc(c, 10),
        "zscore_30": F.zscore(c, 30),
    }
    m, s, hist = F.macd(c, 12, 26, 9)
    singles |= {"macd_12_26_9": m, "macd_12_26_9_signal": s, "macd_12_26_9_hist": hist}
    for name, want in singles.items():
        np.testing.assert_array_equal(out[name].to_numpy(), want)
    # dict form, custom names and columns, single thread
    out2 = F.ohlcv_features({"close": c, "open": h}, {"fast": "ema_5", "o": {"kind": "sma", "period": 3, "column": "open"}}, threads=1)
    np.testing.assert_array_equal(out2["fast"].to_numpy(), F.ema(c, 5))
    np.testing.assert_array_equal(out2["o"].to_numpy(), F.sma(h, 3))


def test_ohlcv_features_large_input_uses_threads_identically() -> None:
    h, lo, c = _ohlc(7, 300_000)
    df = pl.DataFrame({"high": h, "low": lo, "close": c})
    one = F.ohlcv_features(df, SPEC, threads=1)
    two = F.ohlcv_features(df, SPEC, threads=2)
    assert one.equals(two, null_equal=True)


def test_ohlcv_features_rejects_bad_specs() -> None:
    df = pl.DataFrame({"close": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="kind"):
        F.ohlcv_features(df, ["wma_5"])
    with pytest.raises(ValueError, match="twice"):
        F.ohlcv_features(df, ["sma_2", "sma_2"])
    with pytest.raises(DataError, match="column \"high\" is missing"):
        F.ohlcv_features(df, ["atr_2"])
    with pytest.raises(ValueError, match="macd takes"):
        F.ohlcv_features(df, ["macd_1_2"])
    with pytest.raises(ValueError, match="no features"):
        F.ohlcv_features(df, [])
    with pytest.raises(DataError, match="same length"):
        F.ohlcv_features({"close": [1.0, 2.0], "high": [1.0], "low": [1.0, 2.0]}, ["atr_1"])


def test_polars_namespace_matches_functions() -> None:
    h, lo, c = _ohlc(8, 400)
    df = pl.DataFrame({"high": h, "low": lo, "close": c})
    out = df.select(
        pl.col("close").autoopt.sma(10).alias("sma"),
        pl.col("close").autoopt.ema(10).alias("ema"),
        pl.col("close").autoopt.rsi(14).alias("rsi"),
        pl.col("close").autoopt.stddev(10).alias("std"),
        pl.col("close").autoopt.roc(5).alias("roc"),
        pl.col("close").autoopt.returns(1).alias("ret"),
        pl.col("close").autoopt.zscore(20).alias("z"),
        pl.col("close").autoopt.atr("high", "low", 14).alias("atr"),
        pl.col("close").autoopt.macd().alias("macd"),
        pl.col("close").autoopt.macd_signal().alias("sig"),
        pl.col("close").autoopt.macd_hist().alias("hist"),
    )
    m, s, hist = F.macd(c)
    want = {"sma": F.sma(c, 10), "ema": F.ema(c, 10), "rsi": F.rsi(c, 14), "std": F.stddev(c, 10),
            "roc": F.roc(c, 5), "ret": F.returns(c, 1), "z": F.zscore(c, 20), "atr": F.atr(h, lo, c, 14),
            "macd": m, "sig": s, "hist": hist}
    for name, w in want.items():
        col = out[name]
        assert col.dtype == pl.Float64
        assert col.null_count() == int(np.isnan(w).sum()), name  # warm-up rows are null
        np.testing.assert_array_equal(col.to_numpy(), w)
    rolled = df.select(pl.col("close").rolling_mean(10))["close"]
    assert out["sma"].is_null().equals(rolled.is_null())
    np.testing.assert_allclose(out["sma"].drop_nulls().to_numpy(), rolled.drop_nulls().to_numpy(), rtol=1e-9)


def test_polars_namespace_per_group_and_lazy() -> None:
    _, _, c = _ohlc(9, 200)
    df = pl.DataFrame({"sym": ["A"] * 100 + ["B"] * 100, "close": c})
    out = df.lazy().with_columns(pl.col("close").autoopt.ema(5).over("sym").alias("e")).collect()
    np.testing.assert_array_equal(out["e"].to_numpy()[:100], F.ema(c[:100], 5))
    np.testing.assert_array_equal(out["e"].to_numpy()[100:], F.ema(c[100:], 5))
    ints = pl.DataFrame({"close": [1, 2, 3, 4]}).select(pl.col("close").autoopt.sma(2))
    assert ints["close"].to_list() == [None, 1.5, 2.5, 3.5]


def test_polars_namespace_validates_parameters() -> None:
    with pytest.raises(ValueError, match="period"):
        pl.col("close").autoopt.ema(0)
    with pytest.raises(TypeError, match="int"):
        pl.col("close").autoopt.sma("5")  # type: ignore[arg-type]
    with pytest.raises(pl.exceptions.ComputeError, match="Float64|format"):
        pl.DataFrame({"close": ["a"]}).select(
            pl.plugins.register_plugin_function(
                plugin_path=_native.__file__, function_name="sma", args=[pl.col("close"), pl.lit(2.0)]
            )
        )
