"""Bar validation: every rule either rejects with a named error or applies a documented repair.

Nothing reaches training silently. `validate_bars` runs the rules in a fixed order and returns the
cleaned frame plus a `ValidationReport` that lists every issue found and what was done about it.

Rules, in the order they run (the rule name is what errors and reports carry):

==================  ==========================================  =====================================
rule                detects                                     actions (policy field)
==================  ==========================================  =====================================
``schema``          missing column, unsupported ts type, empty  always rejects
``null_timestamp``  a null timestamp                            always rejects
``unsorted``        timestamps not ascending                    ``reject`` | ``sort`` (stable)
``duplicate_ts``    the same timestamp twice                    ``reject`` | ``keep_last`` |
                                                                ``keep_first``
``non_finite``      NaN, null or ±inf in open/high/low/close/   ``reject`` | ``forward_fill`` (runs up
                    volume                                      to ``max_fill`` rows per column) |
                                                                ``drop_rows``
``non_positive``    open/high/low/close <= 0 or volume < 0      ``reject`` | ``drop_rows``
``high_low``        high < low                                  ``reject`` | ``swap`` | ``drop_rows``
``ohlc_range``      open or close outside [low, high]           ``reject`` | ``clip`` (open/close
                                                                into [low, high]) | ``widen`` (high =
                                                                max(o,h,l,c), low = min(o,h,l,c)) |
                                                                ``drop_rows``
``zero_volume``     a run of more than ``max_zero_volume_run``  ``reject`` | ``drop_rows`` |
                    consecutive bars with volume == 0           ``report`` (kept, listed)
``gap``             consecutive bars further apart than one     ``reject`` | ``forward_fill`` (insert
                    ``timeframe_ns``                            up to ``max_fill`` bars with o=h=l=c=
                                                                previous close, volume 0) |
                                                                ``report`` (kept, listed)
``off_grid``        spacing that is not a multiple of           follows ``gaps``: ``report`` keeps,
                    ``timeframe_ns``                            anything else rejects
==================  ==========================================  =====================================

Row numbers in errors and reports are 0-based positions in the frame passed in; bars inserted by
gap filling have ``row = None``. ``zero_volume`` runs before ``gap`` so filled bars (volume 0)
are never mistaken for a dead market, and ``gap`` runs last so rows dropped by earlier repairs
show up as gaps (rejected or filled per policy).
"""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np
import polars as pl

from autoopt.errors import ConfigError, DataError

PRICE_COLS: tuple[str, ...] = ("open", "high", "low", "close")
BAR_COLS: tuple[str, ...] = (*PRICE_COLS, "volume")

_ROW = "__row"
_TS = "__ts"


class ValidationPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """What to do per rule. The defaults reject everything: repairs must be asked for."""

    timeframe_ns: int | None = None
    """Expected bar spacing in ns; None switches the gap and off-grid checks off."""
    unsorted: Literal["reject", "sort"] = "reject"
    duplicates: Literal["reject", "keep_last", "keep_first"] = "reject"
    non_finite: Literal["reject", "forward_fill", "drop_rows"] = "reject"
    non_positive: Literal["reject", "drop_rows"] = "reject"
    high_low: Literal["reject", "swap", "drop_rows"] = "reject"
    ohlc_range: Literal["reject", "clip", "widen", "drop_rows"] = "reject"
    zero_volume: Literal["reject", "drop_rows", "report"] = "reject"
    max_zero_volume_run: int | None = None
    """Longest allowed run of volume == 0 bars; None switches the rule off."""
    gaps: Literal["reject", "forward_fill", "report"] = "reject"
    max_fill: int = 1
    """Most consecutive values (non_finite) or missing bars (gap) a forward fill may invent."""

    def __post_init__(self) -> None:
        if self.timeframe_ns is not None and self.timeframe_ns <= 0:
            raise ConfigError(f"ValidationPolicy.timeframe_ns must be > 0, got {self.timeframe_ns}")
        if self.max_fill < 0:
            raise ConfigError(f"ValidationPolicy.max_fill must be >= 0, got {self.max_fill}")
        if self.max_zero_volume_run is not None and self.max_zero_volume_run < 0:
            raise ConfigError(
                f"ValidationPolicy.max_zero_volume_run must be >= 0, got {self.max_zero_volume_run}"
            )


class DataIssue(msgspec.Struct, frozen=True):
    """One finding: which rule, where, and what was done (an action name from the policy)."""

    rule: str
    symbol: str
    row: int | None
    ts: int | None
    action: str
    detail: str = ""


class ValidationReport(msgspec.Struct, frozen=True):
    """Everything `validate_bars` found and did for one symbol."""

    symbol: str
    rows_in: int
    rows_out: int
    issues: list[DataIssue]

    @property
    def clean(self) -> bool:
        """True when the input needed no repair at all."""
        return not self.issues

    def count(self, rule: str) -> int:
        return sum(1 for i in self.issues if i.rule == rule)


def _reject(symbol: str, rule: str, row: int | None, ts: int | None, detail: str) -> DataError:
    where = f"row {row}" if row is not None else "inserted row"
    return DataError(f"{symbol}: rule '{rule}' violated at {where} (ts={ts}): {detail}")


class _Run:
    """Mutable state threaded through the rules."""

    def __init__(self, df: pl.DataFrame, symbol: str, policy: ValidationPolicy) -> None:
        self.df = df
        self.symbol = symbol
        self.policy = policy
        self.issues: list[DataIssue] = []

    def flag(self, rule: str, mask: np.ndarray, action: str, detail: str) -> None:
        """Record one issue per flagged row, or raise on the first one when the action is reject."""
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return
        rows = self.df[_ROW].to_numpy()
        ts = self.df[_TS].to_numpy()
        if action == "reject":
            i = int(idx[0])
            row = None if rows[i] < 0 else int(rows[i])
            raise _reject(self.symbol, rule, row, int(ts[i]), f"{detail} ({idx.size} rows)")
        for j in idx.tolist():
            r = None if rows[j] < 0 else int(rows[j])
            self.issues.append(DataIssue(rule, self.symbol, r, int(ts[j]), action, detail))

    def drop(self, mask: np.ndarray) -> None:
        if mask.any():
            self.df = self.df.filter(pl.Series(~mask))


def _ts_to_ns(col: pl.Series, symbol: str) -> pl.Series:
    dt = col.dtype
    if dt.is_integer():
        return col.cast(pl.Int64)
    if isinstance(dt, pl.Datetime) or dt == pl.Date:
        return col.dt.epoch("ns").cast(pl.Int64)
    raise DataError(f"{symbol}: rule 'schema' violated: ts column must be integer ns, Datetime or Date, got {dt}")


def _ns_to_ts(ns: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype.is_integer():
        return ns.cast(dtype)
    if dtype == pl.Date:
        return ns.cast(pl.Datetime("ns")).cast(pl.Date)
    assert isinstance(dtype, pl.Datetime)
    out = ns.cast(pl.Datetime("ns"))
    if dtype.time_zone is not None:
        out = out.dt.replace_time_zone("UTC").dt.convert_time_zone(dtype.time_zone)
    return out.dt.cast_time_unit(dtype.time_unit or "us")


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end_exclusive) of each run of True in `mask`."""
    if mask.size == 0:
        return []
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _check_schema(df: pl.DataFrame, symbol: str, ts_col: str) -> None:
    missing = [c for c in (ts_col, *BAR_COLS) if c not in df.columns]
    if missing:
        raise DataError(f"{symbol}: rule 'schema' violated: missing columns {missing}")
    if df.height == 0:
        raise DataError(f"{symbol}: rule 'schema' violated: no rows")
    for c in BAR_COLS:
        if not df[c].dtype.is_numeric():
            raise DataError(f"{symbol}: rule 'schema' violated: column {c!r} is {df[c].dtype}")


def _order(run: _Run) -> None:
    ts = run.df[_TS].to_numpy()
    if ts.size > 1 and (np.diff(ts) < 0).any():
        back = np.concatenate(([False], np.diff(ts) < 0))
        run.flag("unsorted", back, run.policy.unsorted, "timestamp earlier than previous row")
        run.df = run.df.sort(_TS, maintain_order=True)
    ts = run.df[_TS].to_numpy()
    dup_next = np.concatenate((ts[1:] == ts[:-1], [False]))  # row has a later twin
    dup_prev = np.concatenate(([False], ts[1:] == ts[:-1]))  # row has an earlier twin
    if dup_prev.any():
        action = run.policy.duplicates
        loser = dup_next if action == "keep_last" else dup_prev
        run.flag("duplicate_ts", loser, action, "timestamp appears more than once; row dropped")
        run.drop(loser)


def _non_finite(run: _Run) -> None:
    action = run.policy.non_finite
    bad_any = np.zeros(run.df.height, dtype=bool)
    bad_cols: dict[str, np.ndarray] = {}
    for c in BAR_COLS:
        v = run.df[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
        bad = ~np.isfinite(v)
        if bad.any():
            bad_cols[c] = bad
            bad_any |= bad
    if not bad_any.any():
        return
    if action == "forward_fill":
        rows = run.df[_ROW].to_numpy()
        ts = run.df[_TS].to_numpy()
        for c, bad in bad_cols.items():
            for s, e in _runs(bad):
                if s == 0:
                    raise _reject(run.symbol, "non_finite", int(rows[s]), int(ts[s]),
                                  f"{c} is not finite at the start: nothing to forward fill from")
                if e - s > run.policy.max_fill:
                    raise _reject(run.symbol, "non_finite", int(rows[s]), int(ts[s]),
                                  f"{c} not finite for {e - s} rows > max_fill={run.policy.max_fill}")
        cols = ", ".join(bad_cols)
        run.flag("non_finite", bad_any, action, f"non-finite value in {cols}")
        run.df = run.df.with_columns(
            pl.when(pl.col(c).cast(pl.Float64).is_finite())
            .then(pl.col(c))
            .otherwise(None)
            .forward_fill()
            .cast(run.df[c].dtype)
            .alias(c)
            for c in bad_cols
        )
    else:
        run.flag("non_finite", bad_any, action, f"non-finite value in {', '.join(bad_cols)}")
        run.drop(bad_any)


def _col(run: _Run, c: str) -> np.ndarray:
    return run.df[c].cast(pl.Float64).to_numpy()


def _non_positive(run: _Run) -> None:
    bad = np.zeros(run.df.height, dtype=bool)
    for c in PRICE_COLS:
        bad |= _col(run, c) <= 0
    bad |= _col(run, "volume") < 0
    run.flag("non_positive", bad, run.policy.non_positive, "price <= 0 or volume < 0")
    run.drop(bad)


def _high_low(run: _Run) -> None:
    bad = _col(run, "high") < _col(run, "low")
    action = run.policy.high_low
    run.flag("high_low", bad, action, "high < low")
    if action == "swap" and bad.any():
        m = pl.Series(bad)
        run.df = run.df.with_columns(
            pl.when(m).then(pl.col("low")).otherwise(pl.col("high")).alias("high"),
            pl.when(m).then(pl.col("high")).otherwise(pl.col("low")).alias("low"),
        )
    elif action == "drop_rows":
        run.drop(bad)


def _ohlc_range(run: _Run) -> None:
    o, h, lo, c = (_col(run, k) for k in PRICE_COLS)
    bad = (o < lo) | (o > h) | (c < lo) | (c > h)
    action = run.policy.ohlc_range
    run.flag("ohlc_range", bad, action, "open or close outside [low, high]")
    if not bad.any():
        return
    if action == "clip":
        run.df = run.df.with_columns(
            pl.col(k).clip(pl.col("low"), pl.col("high")).alias(k) for k in ("open", "close")
        )
    elif action == "widen":
        run.df = run.df.with_columns(
            pl.max_horizontal(*PRICE_COLS).alias("high"),
            pl.min_horizontal(*PRICE_COLS).alias("low"),
        )
    elif action == "drop_rows":
        run.drop(bad)


def _zero_volume(run: _Run) -> None:
    limit = run.policy.max_zero_volume_run
    if limit is None:
        return
    zero = _col(run, "volume") == 0
    bad = np.zeros_like(zero)
    for s, e in _runs(zero):
        if e - s > limit:
            bad[s:e] = True
    run.flag("zero_volume", bad, run.policy.zero_volume,
             f"run of volume == 0 longer than max_zero_volume_run={limit}")
    if run.policy.zero_volume == "drop_rows":
        run.drop(bad)


def _gaps(run: _Run) -> None:
    tf = run.policy.timeframe_ns
    if tf is None or run.df.height < 2:
        return
    action = run.policy.gaps
    ts = run.df[_TS].to_numpy()
    step = np.diff(ts)
    off = np.concatenate(([False], step % tf != 0))
    if off.any():
        run.flag("off_grid", off, "report" if action == "report" else "reject",
                 f"spacing is not a multiple of timeframe_ns={tf}")
    missing = np.concatenate(([0], step // tf - 1))
    gap = missing > 0
    if not gap.any():
        return
    if action != "forward_fill":
        first = int(np.flatnonzero(gap)[0])
        run.flag("gap", gap, action, f"{int(missing[first])} missing bar(s) before this row"
                 if action == "reject" else "missing bar(s) before this row")
        return
    rows = run.df[_ROW].to_numpy()
    too_big = np.flatnonzero(missing > run.policy.max_fill)
    if too_big.size:
        i = int(too_big[0])
        raise _reject(run.symbol, "gap", int(rows[i]) if rows[i] >= 0 else None, int(ts[i]),
                      f"{int(missing[i])} missing bars before this row > max_fill={run.policy.max_fill}")
    # Build the full grid, left-join, then fill: o=h=l=c=previous close, volume 0, others ffilled.
    grid = pl.DataFrame({_TS: np.arange(ts[0], ts[-1] + tf, tf, dtype=np.int64)})
    filled = grid.join(run.df, on=_TS, how="left", maintain_order="left")
    inserted = filled[_ROW].is_null().to_numpy()
    prev_close = pl.col("close").forward_fill()
    others = [c for c in run.df.columns if c not in (*BAR_COLS, _TS, _ROW)]
    filled = filled.with_columns(
        *(pl.when(pl.col(_ROW).is_null()).then(prev_close).otherwise(pl.col(c)).alias(c)
          for c in PRICE_COLS),
        pl.col("volume").fill_null(0),
        *(pl.col(c).forward_fill() for c in others),
    ).with_columns(pl.col(_ROW).fill_null(-1))
    run.df = filled
    run.flag("gap", inserted, "forward_fill", "missing bar inserted: o=h=l=c=previous close, volume 0")


def validate_bars(
    df: pl.DataFrame,
    symbol: str,
    policy: ValidationPolicy | None = None,
    *,
    ts_col: str = "ts",
) -> tuple[pl.DataFrame, ValidationReport]:
    """Check one symbol's bars against every rule; return (clean frame, report) or raise DataError.

    The clean frame has the input's columns and ts dtype, sorted by ts, with repairs applied.
    """
    policy = policy or ValidationPolicy()
    _check_schema(df, symbol, ts_col)
    ts_dtype = df[ts_col].dtype
    ts_ns = _ts_to_ns(df[ts_col], symbol)
    if ts_ns.null_count():
        row = int(ts_ns.is_null().arg_max() or 0)
        raise _reject(symbol, "null_timestamp", row, None, "timestamp is null")
    columns = df.columns
    work = df.with_columns(ts_ns.alias(_TS), pl.int_range(0, df.height, dtype=pl.Int64).alias(_ROW))
    run = _Run(work, symbol, policy)
    _order(run)
    _non_finite(run)
    _non_positive(run)
    _high_low(run)
    _ohlc_range(run)
    _zero_volume(run)
    if run.df.height == 0:
        raise DataError(f"{symbol}: rule 'schema' violated: no rows left after repairs")
    _gaps(run)
    out = run.df.with_columns(_ns_to_ts(pl.col(_TS), ts_dtype).alias(ts_col)).select(columns)
    report = ValidationReport(symbol, df.height, out.height, run.issues)
    return out, report


__all__ = [
    "BAR_COLS",
    "DataIssue",
    "PRICE_COLS",
    "ValidationPolicy",
    "ValidationReport",
    "validate_bars",
]
