"""The ``autoopt`` polars expression namespace: ``pl.col("close").autoopt.ema(12)``.

Each method is a polars expression plugin implemented in `autoopt._native` (the extension
exports the polars plugin ABI), so it runs inside the polars engine without the GIL. Inputs
are cast to Float64; parameters travel as Float64 literals (no kwargs, hence no pickling).
Warm-up rows are null, as with polars' own rolling functions.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from polars.plugins import register_plugin_function

from autoopt import _native

_LIB = Path(_native.__file__)
_MAX_PERIOD = int(_native.MAX_PERIOD)


def _period(name: str, value: int, minimum: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not minimum <= value <= _MAX_PERIOD:
        raise ValueError(f"{name} must be in [{minimum}, {_MAX_PERIOD}], got {value}")
    return float(value)


def _call(function: str, exprs: list[pl.Expr], params: list[float]) -> pl.Expr:
    args = [e.cast(pl.Float64) for e in exprs] + [pl.lit(p, dtype=pl.Float64) for p in params]
    return register_plugin_function(
        plugin_path=_LIB, function_name=function, args=args, is_elementwise=False
    )


def _expr(e: pl.Expr | str) -> pl.Expr:
    return pl.col(e) if isinstance(e, str) else e


@pl.api.register_expr_namespace("autoopt")
class AutooptNamespace:
    """TA-Lib-compatible indicators as polars expressions."""

    def __init__(self, expr: pl.Expr) -> None:
        self._expr = expr

    def sma(self, period: int = 30) -> pl.Expr:
        """Simple moving average (talib.SMA)."""
        return _call("sma", [self._expr], [_period("period", period, 1)])

    def ema(self, period: int = 30) -> pl.Expr:
        """Exponential moving average seeded with the first SMA (talib.EMA)."""
        return _call("ema", [self._expr], [_period("period", period, 1)])

    def rsi(self, period: int = 14) -> pl.Expr:
        """Wilder's relative strength index (talib.RSI)."""
        return _call("rsi", [self._expr], [_period("period", period, 2)])

    def stddev(self, period: int = 5) -> pl.Expr:
        """Population standard deviation over the window (talib.STDDEV, nbdev=1)."""
        return _call("stddev", [self._expr], [_period("period", period, 2)])

    def roc(self, period: int = 10) -> pl.Expr:
        """Rate of change in percent (talib.ROC)."""
        return _call("roc", [self._expr], [_period("period", period, 1)])

    def returns(self, period: int = 1) -> pl.Expr:
        """Simple return over `period` rows (talib.ROCP)."""
        return _call("returns", [self._expr], [_period("period", period, 1)])

    def zscore(self, period: int = 20) -> pl.Expr:
        """(x - SMA) / STDDEV over the window; null where the deviation is 0."""
        return _call("zscore", [self._expr], [_period("period", period, 2)])

    def atr(self, high: pl.Expr | str = "high", low: pl.Expr | str = "low", period: int = 14) -> pl.Expr:
        """Average true range (talib.ATR); this expression is the close."""
        return _call("atr", [_expr(high), _expr(low), self._expr], [_period("period", period, 1)])

    def _macd(self, function: str, fast: int, slow: int, signal: int) -> pl.Expr:
        params = [_period("fast", fast, 2), _period("slow", slow, 2), _period("signal", signal, 1)]
        return _call(function, [self._expr], params)

    def macd(self, fast: int = 12, slow: int = 26, signal: int = 9) -> pl.Expr:
        """MACD line (talib.MACD output 0)."""
        return self._macd("macd", fast, slow, signal)

    def macd_signal(self, fast: int = 12, slow: int = 26, signal: int = 9) -> pl.Expr:
        """MACD signal line (talib.MACD output 1)."""
        return self._macd("macd_signal", fast, slow, signal)

    def macd_hist(self, fast: int = 12, slow: int = 26, signal: int = 9) -> pl.Expr:
        """MACD histogram (talib.MACD output 2)."""
        return self._macd("macd_hist", fast, slow, signal)


__all__ = ["AutooptNamespace"]
