"""Technical indicators with TA-Lib's conventions, computed in Rust.

`sma`, `ema`, `rsi`, `atr`, `stddev` and `macd` reproduce the `talib` functions of the same
names (SMA-seeded EMAs, Wilder smoothing seeded with a simple average, population standard
deviation, MACD's aligned fast/slow seeds, leading NaNs up to the lookback, leading NaN inputs
skipped). `roc` is ``talib.ROC`` (percent), `returns` is ``talib.ROCP`` (fraction) and `zscore`
is ``(x - SMA) / STDDEV`` (NaN where the deviation is 0).

`ohlcv_features(df, spec)` computes a whole indicator set in one fused pass over the columns
and returns a polars DataFrame. Importing this module also registers the polars expression
namespace ``pl.col("close").autoopt.ema(12)`` (see `autoopt._features_polars`).

Inputs are 1-D numeric arrays, sequences or polars Series; contiguous float64 data is read
without copying, integers are converted, anything else raises TypeError.

Outputs of 1 MiB or more (131,072 rows) are written into the memory of earlier outputs that
nothing refers to any more, when there is one of the same size (kept up to 1 GiB for up to a
minute): the kernel's zeroing of fresh pages cost more than the indicators themselves on 10M
bars. ``AUTOOPT_OUTPUT_POOL_MB=0`` switches this off; `release_output_buffers()` frees what is
kept now.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
from numpy.typing import ArrayLike

from autoopt import _features_polars as _features_polars  # registers the `autoopt` namespace
from autoopt import _native
from autoopt._native import (
    atr,
    ema,
    macd,
    release_output_buffers,
    returns,
    roc,
    rsi,
    sma,
    stddev,
    zscore,
)

#: indicator kind -> (parameter names, TA-Lib default parameters)
KINDS: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "sma": (("period",), (30,)),
    "ema": (("period",), (30,)),
    "rsi": (("period",), (14,)),
    "atr": (("period",), (14,)),
    "stddev": (("period",), (5,)),
    "roc": (("period",), (10,)),
    "returns": (("period",), (1,)),
    "zscore": (("period",), (20,)),
    "macd": (("fast", "slow", "signal"), (12, 26, 9)),
}

Spec = str | Mapping[str, Any]
_SHORT = re.compile(r"^([a-z]+)((?:_\d+)*)$")


def _parse_one(name: str | None, spec: Spec) -> tuple[str, str, tuple[int, ...], str]:
    """(output name, kind, params, column) from ``"ema_12"`` or ``{"kind": "ema", ...}``."""
    if isinstance(spec, str):
        m = _SHORT.match(spec)
        if not m or m.group(1) not in KINDS:
            raise ValueError(
                f"feature spec {spec!r} is not '<kind>[_<int>...]' with kind in {sorted(KINDS)}"
            )
        kind = m.group(1)
        names, defaults = KINDS[kind]
        given = tuple(int(p) for p in m.group(2).split("_")[1:])
        if len(given) not in (0, len(names)):
            raise ValueError(f"feature spec {spec!r}: {kind} takes {len(names)} parameter(s)")
        return name or spec, kind, given or defaults, "close"
    if not isinstance(spec, Mapping):
        raise TypeError(f"a feature spec must be a str or a mapping, got {type(spec).__name__}")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ValueError(f"feature spec {dict(spec)!r}: 'kind' must be one of {sorted(KINDS)}")
    names, defaults = KINDS[kind]
    unknown = set(spec) - {"kind", "name", "column", *names}
    if unknown:
        raise ValueError(f"feature spec {dict(spec)!r}: unknown keys {sorted(unknown)}")
    params = []
    for pname, default in zip(names, defaults, strict=True):
        value = spec.get(pname, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"feature spec {dict(spec)!r}: {pname} must be an int")
        params.append(value)
    out = spec.get("name") or name or "_".join([kind, *map(str, params)])
    column = spec.get("column", "close")
    if not isinstance(column, str):
        raise TypeError(f"feature spec {dict(spec)!r}: column must be a str")
    return str(out), str(kind), tuple(params), column


def parse_spec(spec: Sequence[Spec] | Mapping[str, Spec]) -> list[tuple[str, str, tuple[int, ...], str]]:
    """Normalises a feature set: a list of specs, or a mapping of output name -> spec."""
    if isinstance(spec, str) or not isinstance(spec, Sequence | Mapping):
        raise TypeError("spec must be a list of feature specs or a mapping name -> spec")
    items = (
        [_parse_one(str(k), v) for k, v in spec.items()]
        if isinstance(spec, Mapping)
        else [_parse_one(None, s) for s in spec]
    )
    if not items:
        raise ValueError("spec names no features")
    seen: set[str] = set()
    for out, kind, _, _ in items:
        for name in _output_names(out, kind):
            if name in seen:
                raise ValueError(f"feature name {name!r} appears twice in the spec")
            seen.add(name)
    return items


def _output_names(name: str, kind: str) -> list[str]:
    return [name, f"{name}_signal", f"{name}_hist"] if kind == "macd" else [name]


def ohlcv_features(
    df: pl.DataFrame | Mapping[str, ArrayLike],
    spec: Sequence[Spec] | Mapping[str, Spec],
    *,
    threads: int | None = None,
) -> pl.DataFrame:
    """Computes every indicator in `spec` in one fused pass over `df`'s columns.

    `spec` entries are strings such as ``"ema_12"``, ``"rsi_14"``, ``"macd_12_26_9"`` (defaults
    when no numbers are given) or mappings ``{"kind": "ema", "period": 12, "column": "close",
    "name": "ema_fast"}``. ATR reads the ``high``, ``low`` and ``close`` columns. MACD yields
    ``<name>``, ``<name>_signal`` and ``<name>_hist``. Returns only the feature columns, each
    numerically identical to calling the single-indicator function. Independent indicators run
    on up to `threads` threads (default: the native limit, `AUTOOPT_THREADS`; see
    `autoopt.runtime.native_threads`), with the same results on any number of threads.
    """
    items = parse_spec(spec)
    if isinstance(df, pl.DataFrame):
        columns: dict[str, Any] = {c: df.get_column(c) for c in df.columns}
    elif isinstance(df, Mapping):
        columns = dict(df)
    else:
        raise TypeError(f"df must be a polars DataFrame or a mapping of columns, got {type(df).__name__}")
    # 0: as many threads as the native limit allows (AUTOOPT_THREADS), which also caps `threads`
    arrays = _native.fused_features(
        columns, [(kind, list(params), col) for _, kind, params, col in items], threads or 0
    )
    names = [n for out, kind, _, _ in items for n in _output_names(out, kind)]
    return pl.DataFrame(dict(zip(names, arrays, strict=True)))


__all__ = [
    "KINDS",
    "atr",
    "ema",
    "macd",
    "ohlcv_features",
    "parse_spec",
    "release_output_buffers",
    "returns",
    "roc",
    "rsi",
    "sma",
    "stddev",
    "zscore",
]
