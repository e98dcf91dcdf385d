"""Bar validation: each rule rejects with a message naming symbol, row and rule, or repairs as documented."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from autoopt.data import ValidationPolicy, validate_bars
from autoopt.errors import DataError

H = 3_600_000_000_000  # one hour in ns


@pytest.fixture
def bars() -> pl.DataFrame:
    """Eight clean hourly bars."""
    n = 8
    close = 100.0 + np.arange(n, dtype=float)
    return pl.DataFrame(
        {
            "ts": np.arange(n, dtype=np.int64) * H,
            "open": close - 0.5,
            "high": close + 1.0,
            "low": close - 1.0,
            "close": close,
            "volume": np.full(n, 10.0),
        }
    )


def _set(df: pl.DataFrame, col: str, row: int, value: float) -> pl.DataFrame:
    return df.with_columns(df[col].scatter(row, value))


def test_clean_bars_pass_unchanged(bars: pl.DataFrame) -> None:
    out, report = validate_bars(bars, "EURUSD", ValidationPolicy(timeframe_ns=H))
    assert out.equals(bars)
    assert report.clean and report.rows_in == report.rows_out == 8


@pytest.mark.parametrize(
    ("mutate", "rule", "row"),
    [
        (lambda d: _set(d, "close", 3, math.nan), "non_finite", 3),
        (lambda d: _set(d, "volume", 5, math.inf), "non_finite", 5),
        (lambda d: _set(d, "low", 2, -1.0), "non_positive", 2),
        (lambda d: _set(d, "high", 4, 50.0), "high_low", 4),
        (lambda d: _set(d, "open", 6, 200.0), "ohlc_range", 6),
        (lambda d: d.with_columns(pl.Series("ts", [0, 1, 2, 4, 3, 5, 6, 7]) * H), "unsorted", 4),
        (lambda d: d.with_columns(pl.Series("ts", [0, 1, 2, 3, 3, 5, 6, 7]) * H), "duplicate_ts", 4),
        (lambda d: d.with_columns(pl.Series("ts", [0, 1, 2, 3, 5, 6, 7, 8]) * H), "gap", 4),
        (lambda d: d.with_columns(pl.Series("ts", [0, 1, 2, 3, 4, 5, 6, 7]) * H + pl.Series([0] * 7 + [5])), "off_grid", 7),
    ],
)
def test_default_policy_rejects_naming_symbol_row_rule(bars, mutate, rule, row) -> None:
    with pytest.raises(DataError) as exc:
        validate_bars(mutate(bars), "GOOG", ValidationPolicy(timeframe_ns=H))
    msg = str(exc.value)
    assert "GOOG" in msg and f"rule '{rule}'" in msg and f"row {row} " in msg


def test_zero_volume_run_rejected_only_beyond_limit(bars: pl.DataFrame) -> None:
    two = bars.with_columns(bars["volume"].scatter([2, 3], 0.0))
    three = bars.with_columns(bars["volume"].scatter([2, 3, 4], 0.0))
    policy = ValidationPolicy(max_zero_volume_run=2)
    validate_bars(two, "X", policy)
    with pytest.raises(DataError, match=r"X: rule 'zero_volume' violated at row 2 "):
        validate_bars(three, "X", policy)
    out, report = validate_bars(three, "X", ValidationPolicy(max_zero_volume_run=2, zero_volume="drop_rows"))
    assert out.height == 5 and [i.row for i in report.issues] == [2, 3, 4]


def test_missing_column_and_null_ts_rejected(bars: pl.DataFrame) -> None:
    with pytest.raises(DataError, match=r"rule 'schema'.*volume"):
        validate_bars(bars.drop("volume"), "X")
    with pytest.raises(DataError, match=r"X: rule 'schema'.*ts column"):
        validate_bars(bars.with_columns(pl.col("ts").cast(pl.Utf8)), "X")
    nulls = bars.with_columns(bars["ts"].scatter(3, None))
    with pytest.raises(DataError, match=r"rule 'null_timestamp' violated at row 3"):
        validate_bars(nulls, "X")


def test_sort_and_keep_last_duplicate_repairs(bars: pl.DataFrame) -> None:
    shuffled = pl.concat([bars[4:], bars[:4], bars[2:3].with_columns(close=pl.lit(101.5))])
    policy = ValidationPolicy(timeframe_ns=H, unsorted="sort", duplicates="keep_last")
    out, report = validate_bars(shuffled, "X", policy)
    assert out["ts"].to_list() == bars["ts"].to_list()
    assert out["close"][2] == 101.5  # the later duplicate won
    # rows 4 (ts=0 after ts=7h) and 8 (ts=2h after ts=3h) step backwards
    assert [i.row for i in report.issues if i.rule == "unsorted"] == [4, 8]
    assert report.count("duplicate_ts") == 1
    dup = next(i for i in report.issues if i.rule == "duplicate_ts")
    assert (dup.row, dup.action) == (6, "keep_last")  # original row 6 (ts=2h, first copy) dropped


def test_keep_first_duplicate(bars: pl.DataFrame) -> None:
    dup = pl.concat([bars, bars[7:8].with_columns(close=pl.lit(107.5))])
    out, report = validate_bars(dup, "X", ValidationPolicy(duplicates="keep_first"))
    assert out.height == 8 and out["close"][7] == 107.0
    assert [(i.rule, i.row) for i in report.issues] == [("duplicate_ts", 8)]


def test_forward_fill_non_finite_within_limit(bars: pl.DataFrame) -> None:
    bad = bars.with_columns(bars["close"].scatter([3, 4], math.nan))
    # the filled close (102) falls below row 4's low (103): ohlc_range must catch it too
    with pytest.raises(DataError, match=r"rule 'ohlc_range' violated at row 4 "):
        validate_bars(bad, "X", ValidationPolicy(non_finite="forward_fill", max_fill=2))
    policy = ValidationPolicy(non_finite="forward_fill", max_fill=2, ohlc_range="widen")
    out, report = validate_bars(bad, "X", policy)
    assert out["close"].to_list()[2:6] == [102.0, 102.0, 102.0, 105.0]
    assert out["low"][4] == 102.0
    assert [(i.rule, i.row, i.action) for i in report.issues] == [
        ("non_finite", 3, "forward_fill"),
        ("non_finite", 4, "forward_fill"),
        ("ohlc_range", 4, "widen"),
    ]
    with pytest.raises(DataError, match=r"rule 'non_finite' violated at row 3 .*max_fill=1"):
        validate_bars(bad, "X", ValidationPolicy(non_finite="forward_fill", max_fill=1))
    with pytest.raises(DataError, match=r"row 0 .*nothing to forward fill"):
        validate_bars(_set(bars, "open", 0, math.nan), "X", ValidationPolicy(non_finite="forward_fill"))


def test_drop_rows_then_gap_is_filled(bars: pl.DataFrame) -> None:
    bad = _set(bars, "close", 3, -5.0)
    policy = ValidationPolicy(timeframe_ns=H, non_positive="drop_rows", gaps="forward_fill", max_fill=1)
    out, report = validate_bars(bad, "X", policy)
    assert out["ts"].to_list() == bars["ts"].to_list()
    row3 = out.row(3, named=True)
    assert (row3["open"], row3["high"], row3["low"], row3["close"], row3["volume"]) == (102.0,) * 4 + (0.0,)
    assert [(i.rule, i.row, i.action) for i in report.issues] == [
        ("non_positive", 3, "drop_rows"),
        ("gap", None, "forward_fill"),
    ]
    # the same drop with gaps rejected: the hole it leaves is reported as a gap at original row 4
    with pytest.raises(DataError, match=r"rule 'gap' violated at row 4 "):
        validate_bars(bad, "X", ValidationPolicy(timeframe_ns=H, non_positive="drop_rows"))


def test_gap_larger_than_fill_limit_rejected_and_report_keeps(bars: pl.DataFrame) -> None:
    holes = bars.filter(~pl.col("ts").is_in([3 * H, 4 * H]))
    with pytest.raises(DataError, match=r"rule 'gap' violated at row 3 .*2 missing bars"):
        validate_bars(holes, "X", ValidationPolicy(timeframe_ns=H, gaps="forward_fill", max_fill=1))
    out, report = validate_bars(holes, "X", ValidationPolicy(timeframe_ns=H, gaps="report"))
    assert out.equals(holes)
    assert [(i.rule, i.row, i.action) for i in report.issues] == [("gap", 3, "report")]


def test_high_low_swap_and_ohlc_clip_widen(bars: pl.DataFrame) -> None:
    swapped = bars.with_columns(bars["high"].scatter(1, 100.0), bars["low"].scatter(1, 102.0))
    out, report = validate_bars(swapped, "X", ValidationPolicy(high_low="swap"))
    assert (out["high"][1], out["low"][1]) == (102.0, 100.0)
    assert report.issues[0].rule == "high_low" and report.issues[0].action == "swap"

    wild = _set(bars, "close", 5, 110.0)  # high is 106
    out, report = validate_bars(wild, "X", ValidationPolicy(ohlc_range="clip"))
    assert out["close"][5] == 106.0 and report.issues[0].action == "clip"
    out, _ = validate_bars(wild, "X", ValidationPolicy(ohlc_range="widen"))
    assert out["close"][5] == 110.0 and out["high"][5] == 110.0


def test_datetime_ts_round_trips_with_fill(bars: pl.DataFrame) -> None:
    dt = bars.with_columns(pl.from_epoch("ts", time_unit="ns").dt.replace_time_zone("UTC").dt.cast_time_unit("us"))
    holes = dt.filter(pl.col("close") != 103.0)
    out, report = validate_bars(holes, "X", ValidationPolicy(timeframe_ns=H, gaps="forward_fill"))
    assert out.schema == dt.schema
    assert out["ts"].to_list() == dt["ts"].to_list()
    assert report.count("gap") == 1 and report.rows_out == 8
