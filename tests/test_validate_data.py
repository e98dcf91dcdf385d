"""Bar validation: each rule rejects with one line naming symbol, rule, row, ts and value; each
repair does what the module docstring says; warnings keep the bars; all of it is reported."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from autoopt.data import RuleReport, ValidationPolicy, coerce_bars, validate_bars
from autoopt.errors import ConfigError, DataError
from autoopt.pipeline.dataset import validation_policy

H = 3_600_000_000_000  # one hour in ns
T0 = 1_704_182_400_000_000_000  # 2024-01-02T08:00Z, a Tuesday


def _bars(n: int = 40) -> pl.DataFrame:
    """Hourly bars on weekdays with a gentle zig-zag, volume 10."""
    close = 100.0 + np.cumsum(np.where(np.arange(n) % 3 == 0, -0.5, 0.5))
    return pl.DataFrame({
        "ts": T0 + np.arange(n, dtype=np.int64) * H,
        "open": close - 0.2, "high": close + 1.0, "low": close - 1.0, "close": close,
        "volume": np.full(n, 10.0),
    })


def _set(df: pl.DataFrame, col: str, row: int, value: float) -> pl.DataFrame:
    return df.with_columns(df[col].scatter(row, value))


def _spike(df: pl.DataFrame, row: int, factor: float) -> pl.DataFrame:
    m = pl.int_range(pl.len()) == row
    return df.with_columns(pl.when(m).then(pl.col(c) * factor).otherwise(pl.col(c)).alias(c)
                           for c in ("open", "high", "low", "close"))


def _zero_volume(df: pl.DataFrame, rows: range) -> pl.DataFrame:
    m = pl.int_range(pl.len()).is_in(list(rows))
    return df.with_columns(pl.when(m).then(0.0).otherwise(pl.col("volume")).alias("volume"))


def test_clean_bars_pass_unchanged_with_no_report() -> None:
    bars = _bars()
    out, report = validate_bars(bars, "EURUSD")
    assert out.equals(bars) and report.clean and report.rows_out == 40


DEFECTS = [
    ("unsorted", lambda b: pl.concat([b[:5], b[6:7], b[5:6], b[7:]]), 6, "ts="),
    ("duplicate_ts", lambda b: _set(b, "ts", 9, int(b["ts"][8])), 8, "ts="),
    ("non_finite", lambda b: _set(b, "volume", 11, math.nan), 11, "value nan"),
    ("non_positive", lambda b: _set(b, "close", 7, -1.0), 7, "value -1.0"),
    ("high_low", lambda b: _set(b, "high", 12, 50.0), 12, "'high': 50.0"),
    ("high_low", lambda b: _set(b, "open", 13, 200.0), 13, "'open': 200.0"),
    ("zero_volume_run", lambda b: _zero_volume(b, range(20, 30)), 20, "value 0.0"),
    ("outlier_return", lambda b: _spike(b, 25, 100.0), 25, "value 1"),
    ("gap", lambda b: b.filter((pl.int_range(pl.len()) < 15) | (pl.int_range(pl.len()) > 26)),
     15, "value 12"),
]


@pytest.mark.parametrize(("rule", "plant", "row", "value"), DEFECTS)
def test_each_rule_rejects_by_default_naming_symbol_rule_row_ts_value(
    rule: str, plant, row: int, value: str
) -> None:
    with pytest.raises(DataError) as err:
        validate_bars(plant(_bars()), "GOOG", ValidationPolicy())
    msg = str(err.value)
    assert msg.startswith(f"GOOG: rule '{rule}' violated at row {row} (ts=20"), msg
    assert value in msg and "\n" not in msg


def test_not_numeric_and_mixed_timezones_are_named_not_mistaken_for_other_rules() -> None:
    cells = [str(v) for v in _bars(5)["close"]]
    cells[3] = "abc"
    text = _bars(5).with_columns(pl.Series("close", cells))
    with pytest.raises(DataError, match=r"^X: rule 'not_numeric' violated at row 3 .*column "
                                        r"'close' value 'abc' is not a number"):
        validate_bars(text, "X")
    stamps = ["2024-01-02T08:00:00+00:00", "2024-01-02T09:00:00+00:00",
              "2024-01-02T12:00:00+02:00", "2024-01-02T11:00:00+00:00"]
    zoned = _bars(4).with_columns(pl.Series("ts", stamps))
    with pytest.raises(DataError, match=r"^X: rule 'mixed_timezones' violated at row 2 .*offset "
                                        r"\+02:00 differs from row 0's \+00:00"):
        validate_bars(zoned, "X")
    out, report = validate_bars(zoned, "X", ValidationPolicy(mixed_timezones="repair"))
    assert out["ts"].to_list() == [T0, T0 + H, T0 + 2 * H, T0 + 3 * H]
    assert [r.rule for r in report.rules] == ["mixed_timezones"]


def test_order_repairs_sort_and_keep_the_last_copy() -> None:
    bars = _bars(10)
    shuffled = pl.concat([bars[:4], bars[6:7], bars[4:6], bars[7:], bars[2:3].with_columns(
        pl.col("close") + 0.1)])
    policy = ValidationPolicy(unsorted="repair", duplicate_ts="repair")
    out, report = validate_bars(shuffled, "X", policy)
    assert out["ts"].to_list() == bars["ts"].to_list()
    assert out["close"][2] == pytest.approx(bars["close"][2] + 0.1)  # the last copy won
    assert {r.rule: r.rows for r in report.rules} == {"unsorted": 2, "duplicate_ts": 1}
    assert all(isinstance(r, RuleReport) and r.action == "repair" for r in report.rules)


def test_value_repairs_fill_drop_and_widen() -> None:
    bars = _set(_set(_bars(), "volume", 11, math.nan), "close", 7, -1.0)
    bars = _set(bars, "open", 12, float(bars["high"][12]) + 0.5)
    policy = ValidationPolicy(non_finite="repair", non_positive="repair", high_low="repair")
    out, report = validate_bars(bars, "X", policy)
    assert out.height == 39 and int(T0 + 7 * H) not in out["ts"].to_list()
    assert out.filter(pl.col("ts") == T0 + 11 * H)["volume"][0] == 10.0
    row12 = out.filter(pl.col("ts") == T0 + 12 * H).row(0, named=True)
    assert row12["high"] == row12["open"] == bars["open"][12]  # the range was widened
    assert {r.rule for r in report.rules} == {"non_finite", "non_positive", "high_low"}
    with pytest.raises(DataError, match="'non_finite' violated at row 0 .*nothing to fill from"):
        validate_bars(_set(_bars(), "open", 0, math.nan), "X", policy)


def test_zero_volume_outlier_and_gap_repairs_and_warnings() -> None:
    bars = _spike(_zero_volume(_bars(60), range(20, 30)), 40, 100.0)
    bars = bars.filter(pl.int_range(pl.len()) != 5)  # one missing hour: not a gap
    bars = bars.filter((pl.int_range(pl.len()) < 44) | (pl.int_range(pl.len()) > 56))  # 13 gone
    fix = ValidationPolicy(zero_volume_run="repair", outlier_return="repair", gap="repair")
    out, report = validate_bars(bars, "X", fix)
    counts = {r.rule: r.rows for r in report.rules}
    assert counts == {"zero_volume_run": 10, "outlier_return": 1, "gap": 1}
    # gap repair keeps the latest contiguous piece: the bars after the 13-bar hole
    assert out["ts"].to_list() == [T0 + 58 * H, T0 + 59 * H]
    warn = ValidationPolicy(zero_volume_run="warn", outlier_return="warn", gap="warn")
    kept, report = validate_bars(bars, "X", warn)
    assert kept.equals(bars)
    assert {r.rule: r.action for r in report.rules} == {
        "zero_volume_run": "warn", "outlier_return": "warn", "gap": "warn"}
    first = next(r for r in report.rules if r.rule == "outlier_return")
    assert first.first_row == 39 and first.first_ts == T0 + 40 * H


def test_a_spike_fires_once_and_thresholds_are_configurable() -> None:
    out, report = validate_bars(_spike(_bars(), 25, 100.0), "X",
                                ValidationPolicy(outlier_return="repair"))
    assert report.count("outlier_return") == 1 and out.height == 39
    # a 15% jump is a real (if rare) move: below the 0.2 log-return floor it is not an outlier
    validate_bars(_spike(_bars(), 25, 1.15), "X")
    with pytest.raises(DataError, match="outlier_return"):
        validate_bars(_spike(_bars(), 25, 1.15), "X", ValidationPolicy(outlier_min_return=0.1))
    validate_bars(_zero_volume(_bars(), range(20, 29)), "X")  # 9 zero bars: under the limit
    validate_bars(_bars().filter(pl.int_range(pl.len()) != 5), "X")  # 1 missing bar


def test_empty_schema_and_null_timestamps_reject_in_one_line() -> None:
    with pytest.raises(DataError, match=r"^data/x\.csv: no rows \(rule: empty\)$"):
        coerce_bars(_bars().clear(), "data/x.csv")
    with pytest.raises(DataError, match=r"rule 'schema' violated: missing columns \['volume'\]"):
        validate_bars(_bars().drop("volume"), "X")
    with pytest.raises(DataError, match="rule 'null_timestamp' violated at row 2 .*'yesterday'"):
        validate_bars(_bars(4).with_columns(
            pl.Series("ts", ["2024-01-02", "2024-01-03", "yesterday", "2024-01-05"])), "X")


def test_policy_comes_from_config_and_a_bad_key_or_action_is_named() -> None:
    assert validation_policy({"gap": "warn", "outlier_z": 8}).outlier_z == 8
    # the first vocabulary still reads: forward_fill is the non_finite repair
    assert validation_policy({"non_finite": "forward_fill"}).non_finite == "repair"
    with pytest.raises(ConfigError, match="pipeline.data_policy.*gap"):
        validation_policy({"gaps": "guess"})
    with pytest.raises(ConfigError, match="pipeline.data_policy.*unsorted"):
        validation_policy({"unsorted": "warn"})  # unsorted bars cannot be kept as they are
    with pytest.raises(ConfigError, match="pipeline.data_policy.*gap_max"):
        validation_policy({"gap_max": 3})


def _outlier_rows_one_by_one(close, prices, med, scale, p):  # noqa: ANN001, ANN202
    """The rule as written first: one bar at a time, returns from the last good close."""
    bad = np.zeros(close.size, dtype=bool)
    worst = np.zeros(close.size)
    ref = close[0]
    for i in range(1, close.size):
        lr = np.log(prices[i] / ref)
        dev = np.abs(lr - med)
        z = dev / scale if scale > 0 else np.where(dev > 0, np.inf, 0.0)
        hit = (z > p.outlier_z) & (np.abs(lr) > p.outlier_min_return)
        if hit.any():
            bad[i] = True
            worst[i] = float(lr[np.argmax(np.abs(lr) * hit)])
        else:
            ref = close[i]
    return bad, worst


@pytest.mark.parametrize("seed", range(6))
def test_the_block_outlier_rule_flags_what_the_bar_by_bar_rule_flags(seed: int) -> None:
    """Blocks of rows checked at once give the very bars and worst returns of the sequential
    rule: spikes, runs of bad bars (the reference close stays put), a level shift, block edges."""
    from autoopt.data.validate import _OUTLIER_BLOCK, outlier_rows

    rng = np.random.default_rng(seed)
    n = 3 * _OUTLIER_BLOCK + 17
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    spikes = rng.choice(np.arange(1, n), size=40, replace=False)
    close[spikes] *= np.exp(rng.choice([-1, 1], 40) * rng.uniform(0.05, 0.3, 40))
    run = int(rng.integers(100, n - 100))
    close[run:run + 5] *= 1.4  # five bad bars in a row, then back
    close[_OUTLIER_BLOCK - 1: _OUTLIER_BLOCK + 1] *= 0.6  # across a block edge
    if seed % 2:
        close[n // 2:] *= 1.5  # a level shift: every later bar stays far from the last good one
    wick = np.abs(rng.normal(0, 1e-3, (2, n))) * close
    prices = np.column_stack([close, close + wick[0], close - wick[1], close])
    r = np.diff(np.log(close))
    med = float(np.median(r))
    scale = 1.4826 * float(np.median(np.abs(r - med)))
    policy = ValidationPolicy()
    got_bad, got_worst = outlier_rows(close, prices, med, scale, policy)
    want_bad, want_worst = _outlier_rows_one_by_one(close, prices, med, scale, policy)
    np.testing.assert_array_equal(got_bad, want_bad)
    np.testing.assert_array_equal(got_worst, want_worst)
    assert got_bad.sum() >= 15  # the rule had work to do
