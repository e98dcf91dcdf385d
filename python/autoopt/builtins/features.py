"""The default feature set, on autoopt's Rust indicators (`autoopt.features`).

Every column is scale-free (a ratio, a return, a z-score, an oscillator), so one model can serve
prices of any level, and causal: row t is computed from bars 0..t only (trailing windows,
recursive averages seeded from the past), which `tests/test_feature_set.py` checks by
recomputing on prefixes and perturbing the future.

=================  ======================================================================
column             definition (close c, high h, low l, volume v)
=================  ======================================================================
``sma20_ratio``    c / SMA(c, 20) − 1
``sma50_ratio``    c / SMA(c, 50) − 1
``ema12_ratio``    c / EMA(c, 12) − 1
``ema26_ratio``    c / EMA(c, 26) − 1
``ret1``           c[t] / c[t−1] − 1
``ret5``           c[t] / c[t−5] − 1
``vol20``          population std of ``ret1`` over 20 bars (rolling volatility)
``volume_z20``     (v − mean(v, 20)) / std(v, 20)
``rsi14``          RSI(c, 14) / 100
``atr14_ratio``    ATR(h, l, c, 14) / c
``macd_ratio``     MACD line (EMA12 − EMA26) / c
``macd_signal``    signal line (EMA9 of MACD) / c
``macd_hist``      (MACD − signal) / c
=================  ======================================================================

The first `WARMUP` rows are incomplete (NaN) and the pipeline drops them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from autoopt import features as ta
from autoopt.errors import DataError
from autoopt.plugins import hookimpl

COLUMNS = (
    "sma20_ratio", "sma50_ratio", "ema12_ratio", "ema26_ratio", "ret1", "ret5", "vol20",
    "volume_z20", "rsi14", "atr14_ratio", "macd_ratio", "macd_signal", "macd_hist",
)
WARMUP = 50
"""Longest lookback: SMA 50 needs rows 0..49; MACD(12, 26, 9) needs 34, vol20 21."""


def _col(bars: pl.DataFrame | Mapping[str, np.ndarray], name: str) -> np.ndarray:
    if name not in bars:
        raise DataError(f"default feature set: bars have no {name!r} column")
    col = bars[name]
    return np.ascontiguousarray(col.to_numpy() if isinstance(col, pl.Series) else col,
                                dtype=np.float64)


class DefaultFeatureSet:
    """SMA/EMA ratios, returns, volatility, volume z-score, RSI, ATR and MACD (see module doc)."""

    name = "default"
    version = "1"

    def columns(self) -> list[str]:
        return list(COLUMNS)

    def warmup(self) -> int:
        return WARMUP

    def compute(self, bars: pl.DataFrame) -> pl.DataFrame:
        return pl.DataFrame(dict(zip(COLUMNS, self.compute_numpy(bars).T, strict=True)))

    def compute_numpy(self, bars: pl.DataFrame | Mapping[str, np.ndarray],
                      tail: int | None = None) -> np.ndarray:
        """The columns as one float64 array (rows x `COLUMNS`), from a frame or a mapping of
        arrays; ``tail``: only the last rows (the indicators still run over every bar, so the
        values are those of the full computation). Why: an engine scoring one bar should not pay
        for building a polars frame (`autoopt.client.champion`); `compute` is this, framed."""
        c, h, lo, v = (_col(bars, n) for n in ("close", "high", "low", "volume"))
        ret1 = ta.returns(c, 1)
        macd, signal, hist = ta.macd(c, 12, 26, 9)
        sl = slice(-tail, None) if tail else slice(None)
        ct = c[sl]
        with np.errstate(divide="ignore", invalid="ignore"):
            cols = (
                ct / ta.sma(c, 20)[sl] - 1.0,
                ct / ta.sma(c, 50)[sl] - 1.0,
                ct / ta.ema(c, 12)[sl] - 1.0,
                ct / ta.ema(c, 26)[sl] - 1.0,
                ret1[sl],
                ta.returns(c, 5)[sl],
                ta.stddev(ret1, 20)[sl],
                ta.zscore(v, 20)[sl],
                ta.rsi(c, 14)[sl] / 100.0,
                ta.atr(h, lo, c, 14)[sl] / ct,
                macd[sl] / ct,
                signal[sl] / ct,
                hist[sl] / ct,
            )
        out = np.empty((ct.shape[0], len(COLUMNS)), dtype=np.float64)
        for j, arr in enumerate(cols):
            out[:, j] = arr
        out[~np.isfinite(out)] = np.nan
        return out


@hookimpl
def autoopt_register_feature_sets() -> list[object]:
    return [DefaultFeatureSet()]
