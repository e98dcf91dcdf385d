"""Training labels, each with the interval it looks into the future (`t1`) so CV can purge overlaps.

Both labellers return a frame aligned row-for-row with the closes passed in, with columns:

- ``label`` (Int8, in {-1, 0, 1}),
- ``t1`` (Int64): the row position of the last bar the label depends on (the label of row ``t``
  is a function of closes ``t .. t1``),
- ``ret`` (Float64): the log return from ``t`` to ``t1``.

**Rows without a label are null and callers must drop them** (`drop_unlabeled`): the last
``horizon`` rows (their future is not in the data yet) and, for the triple barrier, the first
``vol_window`` rows (their volatility estimate needs that much history). Training on a null label,
or filling it, would leak or invent data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from autoopt.errors import DataError

_SCHEMA = {"label": pl.Int8, "t1": pl.Int64, "ret": pl.Float64}


def _closes(close: np.ndarray | pl.Series | Sequence[float]) -> np.ndarray:
    c = np.asarray(close.to_numpy() if isinstance(close, pl.Series) else close, dtype=np.float64)
    if c.ndim != 1:
        raise DataError(f"labels: close must be 1-D, got shape {c.shape}")
    if not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise DataError("labels: close must be finite and > 0 (validate bars first)")
    return c


def _frame(label: np.ndarray, t1: np.ndarray, ret: np.ndarray, valid: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "label": pl.Series(label, dtype=pl.Int8).set(pl.Series(~valid), None),
            "t1": pl.Series(t1, dtype=pl.Int64).set(pl.Series(~valid), None),
            "ret": pl.Series(ret, dtype=pl.Float64).set(pl.Series(~valid), None),
        },
        schema=_SCHEMA,
    )


def fixed_horizon_labels(
    close: np.ndarray | pl.Series | Sequence[float], horizon: int, dead_zone: float = 0.0
) -> pl.DataFrame:
    """Sign of the log return over the next `horizon` bars; |return| <= `dead_zone` is labelled 0.

    The last `horizon` rows are null (see module docstring).
    """
    if horizon < 1:
        raise DataError(f"fixed_horizon_labels: horizon must be >= 1, got {horizon}")
    if dead_zone < 0:
        raise DataError(f"fixed_horizon_labels: dead_zone must be >= 0, got {dead_zone}")
    c = _closes(close)
    n = c.size
    ret = np.zeros(n)
    valid = np.zeros(n, dtype=bool)
    if n > horizon:
        ret[: n - horizon] = np.log(c[horizon:] / c[:-horizon])
        valid[: n - horizon] = True
    label = np.where(ret > dead_zone, 1, np.where(ret < -dead_zone, -1, 0)).astype(np.int8)
    t1 = np.arange(n, dtype=np.int64) + horizon
    return _frame(label, t1, ret, valid)


def rolling_volatility(close: np.ndarray, window: int) -> np.ndarray:
    """Std (ddof=1) of the last `window` one-bar log returns ending at each bar; NaN before that.

    Row t uses closes t-window .. t only, so it is known at the close of bar t.
    """
    r = np.diff(np.log(close))
    out = np.full(close.size, np.nan)
    if window < 2:
        raise DataError(f"rolling_volatility: window must be >= 2, got {window}")
    if r.size >= window:
        win = np.lib.stride_tricks.sliding_window_view(r, window)
        out[window:] = win.std(axis=1, ddof=1)
    return out


def triple_barrier_labels(
    close: np.ndarray | pl.Series | Sequence[float],
    horizon: int,
    pt_mult: float = 1.0,
    sl_mult: float = 1.0,
    vol_window: int = 20,
) -> pl.DataFrame:
    """López de Prado's triple barrier, on closes.

    For row t the barriers are at ±mult × σ_t × sqrt(horizon) in log-return space, where σ_t is
    `rolling_volatility(close, vol_window)[t]` (per bar, scaled to the horizon). The label is 1
    if the profit-take barrier is touched first, -1 if the stop-loss is, 0 if the vertical barrier
    (t + horizon) comes first; `t1` is the touch row. A multiple of 0 disables that barrier.
    The first `vol_window` and the last `horizon` rows are null (see module docstring).
    """
    if horizon < 1:
        raise DataError(f"triple_barrier_labels: horizon must be >= 1, got {horizon}")
    if pt_mult < 0 or sl_mult < 0:
        raise DataError("triple_barrier_labels: pt_mult and sl_mult must be >= 0")
    c = _closes(close)
    n = c.size
    vol = rolling_volatility(c, vol_window)
    valid = np.isfinite(vol) & (np.arange(n) < n - horizon) & (vol > 0)
    label = np.zeros(n, dtype=np.int8)
    t1 = np.arange(n, dtype=np.int64) + horizon
    ret = np.zeros(n)
    logc = np.log(c)
    offsets = np.arange(1, horizon + 1)
    all_idx = np.flatnonzero(valid)
    chunk = max(1, 4_000_000 // horizon)  # bound the (rows × horizon) path matrix to ~32 MB
    for lo in range(0, all_idx.size, chunk):
        idx = all_idx[lo : lo + chunk]
        # paths[k, j] = log return from idx[k] to idx[k] + j + 1
        paths = logc[idx[:, None] + offsets[None, :]] - logc[idx, None]
        width = vol[idx] * np.sqrt(horizon)
        up = paths >= (pt_mult * width)[:, None] if pt_mult > 0 else np.zeros_like(paths, bool)
        dn = paths <= (-sl_mult * width)[:, None] if sl_mult > 0 else np.zeros_like(paths, bool)
        first_up = np.where(up.any(axis=1), up.argmax(axis=1), horizon)
        first_dn = np.where(dn.any(axis=1), dn.argmax(axis=1), horizon)
        hit = np.minimum(first_up, first_dn)
        step = np.minimum(hit, horizon - 1)  # vertical barrier: the last bar of the horizon
        label[idx] = np.where(hit == horizon, 0, np.where(first_up < first_dn, 1, -1))
        t1[idx] = idx + step + 1
        ret[idx] = paths[np.arange(idx.size), step]
    return _frame(label, t1, ret, valid)


def drop_unlabeled(
    frame: pl.DataFrame, columns: Sequence[str] = ("label",), t1: str | None = "t1"
) -> pl.DataFrame:
    """Drop rows where any of `columns` is null and re-base `t1` to positions in the result.

    A `t1` that pointed at a dropped row moves to the next kept row (or one past the end), which
    can only widen a purge, never narrow it.
    """
    keep = ~pl.any_horizontal(pl.col(c).is_null() for c in columns)
    kept_pos = frame.with_row_index("__pos").filter(keep)["__pos"].to_numpy().astype(np.int64)
    out = frame.filter(keep)
    if t1 is not None and t1 in out.columns:
        old = out[t1].to_numpy()
        out = out.with_columns(pl.Series(t1, np.searchsorted(kept_pos, old, side="left"),
                                         dtype=pl.Int64))
    return out


__all__ = [
    "drop_unlabeled",
    "fixed_horizon_labels",
    "rolling_volatility",
    "triple_barrier_labels",
]
