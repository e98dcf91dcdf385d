"""Market data is judged before anything is stored: real bundled bars pass clean, weekends and
exchange holidays are not gaps, bad files fail in one line, the log source reports what it
repairs, and `autoopt retrain` on a file with a 100x outlier refuses without appending a bar
(real nats-server, the real CLI as a subprocess)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from autoopt.builtins.log_source import EventLogSource
from autoopt.builtins.sources import BundledSource, FileSource
from autoopt.data import ValidationPolicy, validate_bars
from autoopt.errors import DataError
from autoopt.log import EventLog, NatsSettings
from autoopt.pipeline.ingest import bar_batches, ingest_bars

DAY = 86_400_000_000_000


def test_the_bundled_real_bars_pass_every_rule_clean() -> None:
    for symbol, bars in BundledSource().load("bundled:EURUSD,GOOG,BTCUSD").items():
        out, report = validate_bars(bars, symbol)
        assert report.clean, (symbol, report.rules)
        assert out.equals(bars)


def test_weekends_and_exchange_holidays_in_daily_bars_are_not_gaps() -> None:
    goog = BundledSource().load("bundled:GOOG")["GOOG"]
    # on the NYSE calendar not one session is missing from 2004-2013, holidays and the two
    # hurricane Sandy days included: zero tolerance passes
    validate_bars(goog, "GOOG", ValidationPolicy(gap_max_missing=0))
    # counted on plain weekdays, exchange holidays (e.g. Good Friday) would be missing days
    with pytest.raises(DataError, match="GOOG: rule 'gap' violated at row"):
        validate_bars(goog, "GOOG", ValidationPolicy(gap_max_missing=0, calendar="weekdays"))
    # a three-week hole is a gap on the exchange calendar too
    hole = goog.filter((pl.int_range(pl.len()) < 500) | (pl.int_range(pl.len()) >= 515))
    with pytest.raises(DataError, match=r"rule 'gap' violated at row 500 .*15 bar\(s\) missing"):
        validate_bars(hole, "GOOG")


def test_weekday_rule_holidays_and_24_7_symbols() -> None:
    days = np.arange(np.datetime64("2024-12-16"), np.datetime64("2025-01-10"))
    trading = [d for d in days if np.is_busday(d) and str(d)[5:] not in ("12-25", "01-01")]
    ts = np.array(trading, dtype="datetime64[ns]").astype(np.int64)
    c = 100.0 + np.arange(ts.size) % 2
    bars = pl.DataFrame({"ts": ts, "open": c, "high": c + 1, "low": c - 1, "close": c,
                         "volume": np.full(ts.size, 5.0)})
    strict = ValidationPolicy(gap_max_missing=0, calendar="weekdays")
    validate_bars(bars, "DAX", strict)  # weekends, Christmas and New Year are not gaps
    with pytest.raises(DataError, match="DAX: rule 'gap'"):
        validate_bars(bars, "DAX", ValidationPolicy(gap_max_missing=0, calendar="weekdays",
                                                    holidays=[]))
    # a crypto pair trades 24/7: the same weekday-only bars are missing their weekends
    with pytest.raises(DataError, match=r"BTC/USDT: rule 'gap' violated .*2 bar\(s\) missing"):
        validate_bars(bars, "BTC/USDT", ValidationPolicy(gap_max_missing=1))


def _csv(path: Path, text: str) -> str:
    path.write_text(text)
    return f"file:{path}"


def test_bad_files_fail_in_one_line_naming_file_rule_row_and_column(tmp_path: Path) -> None:
    src = FileSource()
    head = "ts,open,high,low,close,volume\n"
    for name, text in (("empty.csv", ""), ("header.csv", head)):
        with pytest.raises(DataError) as err:
            src.load(_csv(tmp_path / name, text))
        assert str(err.value) == f"{tmp_path / name}: no rows (rule: empty)"
    with pytest.raises(DataError, match=r"^\S*nope\.csv: no such file or directory$"):
        src.load(f"file:{tmp_path / 'nope.csv'}")
    rows = "".join(f"2024-01-0{d}T00:00:00Z,1,2,0.5,1.5,10\n" for d in range(2, 6))
    bad = rows.replace("1.5,10\n2024-01-04", "abc,10\n2024-01-04")
    with pytest.raises(DataError) as err:
        src.load(_csv(tmp_path / "x.csv", head + bad))
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'x.csv'}: rule 'not_numeric' violated at row 1 ")
    assert "column 'close' value 'abc' is not a number" in msg and "\n" not in msg
    mixed = rows.replace("2024-01-04T00:00:00Z", "2024-01-04T02:00:00+02:00")
    with pytest.raises(DataError, match=r"x2\.csv: rule 'mixed_timezones' violated at row 2"):
        src.load(_csv(tmp_path / "x2.csv", head + mixed))
    with pytest.raises(DataError, match=r"symbol 'A B' must not contain whitespace"):
        src.load(_csv(tmp_path / "long.csv", "symbol," + head + "".join(
            f"A B,{r}" for r in rows.splitlines(keepends=True))))


def _bars(n: int, start: int = 0) -> pl.DataFrame:
    i = np.arange(start, start + n)
    c = 100 + np.sin(i / 5)
    return pl.DataFrame({"ts": i.astype(np.int64) * DAY, "open": c, "high": c + 0.5,
                         "low": c - 0.5, "close": c, "volume": np.full(n, 3.0)})


async def test_nothing_that_fails_a_rule_is_appended_and_the_log_source_reports_repairs(
    event_log: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    spiked = _bars(30).with_columns(
        pl.when(pl.int_range(pl.len()) == 20).then(pl.col(c) * 100).otherwise(pl.col(c))
        for c in ("open", "high", "low", "close"))
    with pytest.raises(DataError, match="S: rule 'outlier_return' violated at row 20"):
        await ingest_bars(event_log, "S", "1d", spiked)
    assert {s.name: s.messages for s in await event_log.info()}["MARKET"] == 0
    # a policy that repairs stores the repaired bars, and says so
    with caplog.at_level(logging.WARNING, logger="autoopt.data.validate"):
        n = await ingest_bars(event_log, "S", "1d", spiked,
                              policy=ValidationPolicy(outlier_return="repair"))
    assert n == 29 and "S: rule 'outlier_return' repair: 1 row(s) from row 20" in caplog.text
    # overlapping batches in the log (written around ingest) are read back sorted and
    # de-duplicated by the one validation layer, which reports it instead of fixing silently
    await event_log.append_many(bar_batches("S", "1d", _bars(5, 27)))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="autoopt.data.validate"):
        frames = await EventLogSource().aload("log:S", None, event_log)
    assert frames["S"]["ts"].is_sorted() and frames["S"]["ts"].n_unique() == frames["S"].height
    assert frames["S"].height == 32 - 1
    assert "S: rule 'duplicate_ts' repair: 3 row(s)" in caplog.text
    assert "S: rule 'unsorted' repair" in caplog.text


def _autoopt(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUTOOPT_DATA_DIR": str(data_dir), "COLUMNS": "400"}
    return subprocess.run([sys.executable, "-m", "autoopt.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "autoopt.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[nats]\nurls = ["{url}"]\n'
                    "[pipeline]\ntrials = 2\npruning = false\n")
    return path


async def test_retrain_on_a_file_with_a_100x_outlier_refuses_and_stores_no_bar(
    tmp_path: Path, nats_server: str
) -> None:
    goog = BundledSource().load("bundled:GOOG")["GOOG"]
    bad = goog.with_columns(
        pl.when(pl.int_range(pl.len()) == 1000).then(pl.col(c) * 100).otherwise(pl.col(c))
        for c in ("open", "high", "low", "close"))
    bad.write_csv(tmp_path / "GOOG.csv")
    cfg = _config(tmp_path, nats_server)
    res = _autoopt(tmp_path / "data", "--config", str(cfg), "retrain", "--quiet",
                   "--source", f"file:{tmp_path / 'GOOG.csv'}")
    assert res.returncode == 2, res.stdout + res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in res.stderr
    assert "GOOG: rule 'outlier_return' violated at row 1000" in errors[0]
    log = await EventLog.connect(NatsSettings(urls=[nats_server]))
    try:
        info = {s.name: s.messages for s in await log.info()}
    finally:
        await log.close()
    assert info.get("MARKET", 0) == 0


def test_retrain_on_an_empty_csv_gives_one_line_and_exit_code_2(
    tmp_path: Path, nats_server: str
) -> None:
    (tmp_path / "x.csv").write_text("")
    res = _autoopt(tmp_path / "data", "--config", str(_config(tmp_path, nats_server)),
                   "retrain", "--quiet", "--source", f"file:{tmp_path / 'x.csv'}")
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.strip() == f"error: {tmp_path / 'x.csv'}: no rows (rule: empty)"


def _intraday_stock_bars(drop: range = range(0)) -> pl.DataFrame:
    """Hourly bars 14:00-20:00 UTC on the weekdays of two weeks (a US stock's session)."""
    day0 = np.datetime64("2024-03-04", "D")
    ts = [int((day + np.timedelta64(h, "h")).astype("datetime64[ns]").astype(np.int64))
          for day in (day0 + np.arange(14)) if np.is_busday(day) for h in range(14, 21)]
    ts = [t for i, t in enumerate(ts) if i not in drop]
    n = len(ts)
    return pl.DataFrame({"ts": np.asarray(ts, dtype=np.int64), "open": np.full(n, 10.0),
                         "high": np.full(n, 10.5), "low": np.full(n, 9.5),
                         "close": np.full(n, 10.0), "volume": np.full(n, 100.0)})


def test_nights_between_intraday_sessions_are_not_gaps_but_a_lost_day_is() -> None:
    out, report = validate_bars(_intraday_stock_bars(), "AAPL")
    assert report.clean and out.height == 70
    with pytest.raises(DataError, match="rule 'gap'"):
        validate_bars(_intraday_stock_bars(drop=range(14, 30)), "AAPL")


def test_a_lost_weekend_of_a_24_7_symbol_without_a_slash_is_a_gap() -> None:
    """BTCUSDT trades on weekends: bars that do so are judged on a 24/7 clock, so a whole
    missing weekend is a gap (it used to pass as a closed market under the weekday rule)."""
    start = int(np.datetime64("2024-03-04T00:00", "ns").astype(np.int64))  # a Monday
    ts = start + np.arange(24 * 21, dtype=np.int64) * 3_600 * 10**9
    weekday = (ts // (86_400 * 10**9) + 3) % 7
    second_weekend = (weekday >= 5) & (ts > start + 7 * 86_400 * 10**9) & (
        ts < start + 14 * 86_400 * 10**9)
    ts = ts[~second_weekend]
    n = ts.size
    bars = pl.DataFrame({"ts": ts, "open": np.full(n, 10.0), "high": np.full(n, 10.5),
                         "low": np.full(n, 9.5), "close": np.full(n, 10.0),
                         "volume": np.full(n, 100.0)})
    with pytest.raises(DataError, match="rule 'gap'"):
        validate_bars(bars, "BTCUSDT")
