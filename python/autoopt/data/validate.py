"""Bar validation: the one layer that decides whether bars are fit to store and train on.

Why one layer: sources (files, exchanges, the event log), ingest and dataset building all call
`validate_bars` (or, for raw tables, its first half `coerce_bars`), so a defect is judged the
same way wherever it comes in, and before anything is appended to the log.

Every rule has an action from the policy (``pipeline.data_policy`` in the config):

* ``reject``: raise `DataError` with one line naming the symbol (or file), the rule, the row
  (0-based position in the frame passed in), its timestamp and the offending value.
* ``repair``: apply the rule's documented repair (below) and report it.
* ``warn``: keep the bars as they are and report them; only offered where the bars stay usable.

Repairs and warnings are never silent: each rule that fired gives one `RuleReport` (rule,
symbol, rows affected, action, first timestamp), returned with the cleaned frame and logged.

Rules, in the order they run, with their default action and repair:

==================  =========================================  ========  ========================
rule                fires on                                   default   repair
==================  =========================================  ========  ========================
``empty``           no rows (always rejects)                   reject    --
``schema``          a missing column, an unusable column type  reject    --
``not_numeric``     a price/volume cell that is not a number   reject    drop the row
                    (e.g. ``"abc"``; casts are strict)
``mixed_timezones`` text timestamps with different UTC offsets, reject    convert each to UTC
                    or some with an offset and some without              (no offset: taken as
                                                                         UTC)
``null_timestamp``  a missing or unparseable timestamp         reject    --
``unsorted``        a timestamp earlier than the row before    reject    stable sort
``duplicate_ts``    the same timestamp twice                   reject    keep the last copy
``non_finite``      NaN, null or ±inf in a bar column          reject    forward fill runs of up
                                                                         to ``max_fill`` rows
                                                                         (longer runs, or one
                                                                         at the start, reject)
``non_positive``    a price <= 0 or a volume < 0               reject    drop the row
``high_low``        high < low, or open/close outside          reject    high = max(o,h,l,c),
                    [low, high]                                          low = min(o,h,l,c);
                                                                         warn keeps
``zero_volume_run`` ``zero_volume_run_bars`` (10) or more      reject    drop the run's bars;
                    consecutive bars with volume == 0                    warn keeps
``outlier_return``  a bar whose log return from the last good  reject    drop the bar; warn keeps
                    close (any of o/h/l/c) has a robust z-
                    score above ``outlier_z`` (20) and an
                    absolute size above ``outlier_min_return``
                    (0.2, i.e. ~22%)
``gap``             more than ``gap_max_missing`` (10) bars    reject    split: keep the bars
                    missing between two bars, counted on the             after the last gap (the
                    calendar                                             latest contiguous
                                                                         piece); warn keeps
==================  =========================================  ========  ========================

Thresholds, and why:

* ``outlier_return``: z = (r - median(r)) / (1.4826 * MAD(r)) over the close-to-close log
  returns. Returns are taken from the last close that was not an outlier, so a one-bar spike
  fires once (the way back is measured from the good close) and a 100x bad tick is caught by
  both tests. The absolute floor keeps quiet markets honest: on hourly EURUSD the MAD is ~0.06%
  so an ordinary 1.6% news move has z ~ 25, but it is far below the floor; the biggest daily
  GOOG move in the bundled data (18%) has z ~ 12.
* ``gap``: the bar interval is inferred as the median spacing in calendar time. The calendar
  (``calendar``) decides which time counts: ``"24/7"`` all of it; ``"weekdays"`` Monday to
  Friday (UTC) except the ``holidays`` (``"MM-DD"`` or ``"YYYY-MM-DD"``); an
  ``exchange_calendars`` code such as ``"XNYS"`` only that exchange's sessions (its open to its
  close for intraday bars, so nights are not gaps either). ``"auto"`` (default): ``"24/7"`` for
  crypto symbols (containing ``/``, e.g. ``BTC/USDT``), ``"XNYS"`` for daily bars, else
  ``"weekdays"``. Daily bars count missing sessions between the bars' dates.
* ``zero_volume_run``: 10 bars is a dead feed, not a quiet hour.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import msgspec
import numpy as np
import polars as pl

from autoopt.errors import ConfigError, DataError

PRICE_COLS: tuple[str, ...] = ("open", "high", "low", "close")
BAR_COLS: tuple[str, ...] = (*PRICE_COLS, "volume")
RULES: tuple[str, ...] = (
    "empty", "schema", "not_numeric", "mixed_timezones", "null_timestamp", "unsorted",
    "duplicate_ts", "non_finite", "non_positive", "high_low", "zero_volume_run",
    "outlier_return", "gap",
)

DAY_NS = 86_400_000_000_000
_ROW = "__row"
_TS = "__ts"
_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")

log = logging.getLogger(__name__)

Fix = Literal["reject", "repair"]
FixOrWarn = Literal["reject", "repair", "warn"]


class ValidationPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The action of each rule and the thresholds; see the module docstring for each repair."""

    not_numeric: Fix = "reject"
    mixed_timezones: Fix = "reject"
    unsorted: Fix = "reject"
    duplicate_ts: Fix = "reject"
    non_finite: Fix = "reject"
    non_positive: Fix = "reject"
    high_low: FixOrWarn = "reject"
    zero_volume_run: FixOrWarn = "reject"
    outlier_return: FixOrWarn = "reject"
    gap: FixOrWarn = "reject"
    max_fill: int = 1
    """Longest run of non-finite values a ``non_finite`` repair may forward fill."""
    zero_volume_run_bars: int = 10
    """``zero_volume_run`` fires on this many consecutive volume == 0 bars (0: rule off)."""
    outlier_z: float = 20.0
    """``outlier_return`` fires above this robust z-score (0: rule off)..."""
    outlier_min_return: float = 0.2
    """...and only when the absolute log return is above this too."""
    gap_max_missing: int = 10
    """``gap`` fires when more bars than this are missing between two bars (-1: rule off)."""
    calendar: str = "auto"
    """``auto`` | ``24/7`` | ``weekdays`` | an exchange_calendars code (``XNYS``, ``XLON``...)."""
    holidays: list[str] = msgspec.field(default_factory=lambda: ["01-01", "12-25"])
    """Closed days of the ``weekdays`` calendar: ``MM-DD`` every year or ``YYYY-MM-DD``."""

    def __post_init__(self) -> None:
        if self.max_fill < 0:
            raise ConfigError(f"data_policy.max_fill must be >= 0, got {self.max_fill}")
        if self.zero_volume_run_bars < 0:
            raise ConfigError(
                f"data_policy.zero_volume_run_bars must be >= 0, got {self.zero_volume_run_bars}")
        if self.outlier_z < 0 or self.outlier_min_return < 0:
            raise ConfigError("data_policy.outlier_z and outlier_min_return must be >= 0")
        if self.gap_max_missing < -1:
            raise ConfigError(
                f"data_policy.gap_max_missing must be >= -1, got {self.gap_max_missing}")
        for h in self.holidays:
            if not re.fullmatch(r"(\d{4}-)?\d{2}-\d{2}", h):
                raise ConfigError(f"data_policy.holidays: {h!r} is not MM-DD or YYYY-MM-DD")

    @classmethod
    def from_config(cls, fields: Mapping[str, Any]) -> ValidationPolicy:
        """The policy of a config's ``pipeline.data_policy``; ConfigError naming a bad key.

        Config files written for the first policy vocabulary keep working: their repair names
        (``forward_fill``, ``sort``, ``keep_last``...) mean ``repair``, ``report`` means
        ``warn``, and the renamed keys (``duplicates``, ``gaps``, ``zero_volume``) map to the
        rule names."""
        fields = {_OLD_KEYS.get(k, k): _OLD_ACTIONS.get(v, v) if isinstance(v, str) else v
                  for k, v in fields.items()}
        try:
            return msgspec.convert(fields, cls)
        except (msgspec.ValidationError, ConfigError) as exc:
            raise ConfigError(f"config key 'pipeline.data_policy': {exc}") from None


_OLD_KEYS = {"duplicates": "duplicate_ts", "gaps": "gap", "zero_volume": "zero_volume_run"}
_OLD_ACTIONS = {a: "repair" for a in ("forward_fill", "sort", "keep_last", "drop_rows", "swap",
                                      "widen")} | {"report": "warn"}


class RuleReport(msgspec.Struct, frozen=True):
    """One rule that fired and was repaired or warned about: how many rows, from when."""

    rule: str
    symbol: str
    rows: int
    action: str
    first_ts: int | None
    first_row: int | None = None
    detail: str = ""

    def line(self) -> str:
        return (f"{self.symbol}: rule '{self.rule}' {self.action}: {self.rows} row(s) from row "
                f"{self.first_row} (ts={_iso(self.first_ts)}): {self.detail}")


class ValidationReport(msgspec.Struct, frozen=True):
    """Everything `validate_bars` found and did for one symbol."""

    symbol: str
    rows_in: int
    rows_out: int
    rules: list[RuleReport]

    @property
    def clean(self) -> bool:
        """True when no rule fired."""
        return not self.rules

    def count(self, rule: str) -> int:
        """Rows affected by ``rule``."""
        return sum(r.rows for r in self.rules if r.rule == rule)


def _iso(ts: int | None) -> str:
    if ts is None:
        return "?"
    return dt.datetime.fromtimestamp(ts / 1e9, dt.UTC).isoformat().replace("+00:00", "Z")


def _error(where: str, rule: str, row: int | None, ts: int | None, detail: str) -> DataError:
    at = f"row {row}" if row is not None else "an unknown row"
    return DataError(f"{where}: rule '{rule}' violated at {at} (ts={_iso(ts)}): {detail}")


class _Run:
    """The frame being checked (with original row numbers and ns timestamps) and the reports."""

    def __init__(self, df: pl.DataFrame, where: str, policy: ValidationPolicy) -> None:
        self.df = df
        self.where = where
        self.policy = policy
        self.reports: list[RuleReport] = []

    def fire(self, rule: str, mask: np.ndarray, action: str, detail: str,
             value: Any = None) -> bool:
        """Reject on the first flagged row, or record a report; True when any row is flagged."""
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return False
        i = int(idx[0])
        row = int(self.df[_ROW][i])
        ts = self.df[_TS][i] if _TS in self.df.columns else None
        shown = f", value {value!r}" if value is not None else ""
        if action == "reject":
            raise _error(self.where, rule, row, ts, f"{detail}{shown} ({idx.size} row(s))")
        self.reports.append(RuleReport(rule, self.where, int(idx.size), action, ts, row,
                                       f"{detail}{shown}"))
        return True

    def drop(self, mask: np.ndarray) -> None:
        if mask.any():
            self.df = self.df.filter(pl.Series(~mask))

    def col(self, c: str) -> np.ndarray:
        return self.df[c].cast(pl.Float64).to_numpy()


# ---------------------------------------------------------------- coercion: raw table → numbers


def _not_numeric(run: _Run) -> None:
    """Strict casts: a cell that is present but not a number fires, naming row and column."""
    casts = {}
    bad_any = np.zeros(run.df.height, dtype=bool)
    for c in BAR_COLS:
        s = run.df[c]
        if s.dtype.is_numeric():
            casts[c] = s.cast(pl.Float64)
            continue
        if s.dtype not in (pl.String, pl.Null):
            raise DataError(f"{run.where}: rule 'schema' violated: column {c!r} is {s.dtype}")
        f = s.cast(pl.Float64, strict=False) if s.dtype == pl.String else s.cast(pl.Float64)
        bad = (f.is_null() & s.is_not_null()).to_numpy()
        if bad.any() and run.policy.not_numeric == "reject":
            i = int(np.flatnonzero(bad)[0])
            raise _error(run.where, "not_numeric", int(run.df[_ROW][i]), None,
                         f"column {c!r} value {s[i]!r} is not a number ({int(bad.sum())} row(s))")
        bad_any |= bad
        casts[c] = f
    run.df = run.df.with_columns(v.alias(c) for c, v in casts.items())
    run.fire("not_numeric", bad_any, "repair", "cell is not a number; row dropped")
    run.drop(bad_any)


def _text_ts(run: _Run, col: pl.Series) -> pl.Series:
    """Text timestamps to UTC ns; offsets must agree (``mixed_timezones``)."""
    zone = col.str.strip_chars().str.extract(_OFFSET.pattern, 1).fill_null("")
    zone = zone.str.replace(r"^Z$", "+00:00").str.replace(r"^([+-]\d{2})(\d{2})$", "$1:$2")
    first = zone[0]
    mixed = (zone != first).to_numpy()
    if mixed.any():
        i = int(np.flatnonzero(mixed)[0])
        run.fire("mixed_timezones", mixed, run.policy.mixed_timezones,
                 f"offset {zone[i] or 'none'} differs from row 0's {first or 'none'}",
                 col[i])
    aware = col.str.to_datetime(time_zone="UTC", strict=False, time_unit="ns")
    naive = col.str.to_datetime(strict=False, time_unit="ns").dt.replace_time_zone("UTC")
    has = (zone != "").to_numpy()
    out = pl.Series(np.where(has, aware.dt.epoch("ns").to_numpy(), naive.dt.epoch("ns")
                             .to_numpy())) if has.any() else naive.dt.epoch("ns")
    nulls = np.where(has, aware.is_null().to_numpy(), naive.is_null().to_numpy())
    return out.cast(pl.Int64).scatter(np.flatnonzero(nulls), None) if nulls.any() else out


def _timestamps(run: _Run, ts_col: str) -> None:
    col = run.df[ts_col]
    dtype = col.dtype
    if dtype == pl.String and col.str.contains(r"^\s*-?\d+\s*$").all():
        ns = col.str.strip_chars().cast(pl.Int64)  # integer ns, read as text (e.g. from a CSV)
    elif dtype == pl.String:
        ns = _text_ts(run, col)
    elif dtype.is_integer():
        ns = col.cast(pl.Int64)
    elif isinstance(dtype, pl.Datetime) or dtype == pl.Date:
        if dtype == pl.Date:
            col = col.cast(pl.Datetime("ns"))
        ns = col.dt.epoch("ns").cast(pl.Int64)
    else:
        raise DataError(f"{run.where}: rule 'schema' violated: timestamp column {ts_col!r} is "
                        f"{dtype}; use integer ns, a datetime, a date or ISO-8601 text")
    bad = ns.is_null().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _error(run.where, "null_timestamp", int(run.df[_ROW][i]), None,
                     f"timestamp {col[i]!r} is missing or unparseable ({int(bad.sum())} row(s))")
    run.df = run.df.with_columns(ns.alias(_TS))


def _start(df: pl.DataFrame, where: str, policy: ValidationPolicy, ts_col: str) -> _Run:
    missing = [c for c in (ts_col, *BAR_COLS) if c not in df.columns]
    if missing:
        raise DataError(f"{where}: rule 'schema' violated: missing columns {missing}")
    if df.height == 0:
        raise DataError(f"{where}: no rows (rule: empty)")
    run = _Run(df.with_columns(pl.int_range(0, df.height, dtype=pl.Int64).alias(_ROW)),
               where, policy)
    _not_numeric(run)
    if run.df.height == 0:
        raise DataError(f"{where}: no rows left after dropping non-numeric ones (rule: empty)")
    _timestamps(run, ts_col)
    return run


def coerce_bars(
    df: pl.DataFrame, where: str, policy: ValidationPolicy | None = None, *, ts_col: str = "ts"
) -> tuple[pl.DataFrame, list[RuleReport]]:
    """A raw table (text cells allowed) as ts (UTC ns, Int64) + Float64 bar columns, other
    columns kept; rules ``empty``, ``schema``, ``not_numeric``, ``mixed_timezones``,
    ``null_timestamp``. ``where`` names the origin in errors (a file path, a symbol)."""
    run = _start(df, where, policy or ValidationPolicy(), ts_col)
    out = run.df.with_columns(pl.col(_TS).alias(ts_col)).drop(_ROW, _TS)
    _log(run.reports)
    return out, run.reports


# ---------------------------------------------------------------- rules on numeric bars


def _unsorted(run: _Run) -> None:
    ts = run.df[_TS].to_numpy()
    back = np.concatenate(([False], np.diff(ts) < 0))
    if run.fire("unsorted", back, run.policy.unsorted, "timestamp earlier than the row before"):
        run.df = run.df.sort(_TS, maintain_order=True)


def _duplicate_ts(run: _Run) -> None:
    ts = run.df[_TS].to_numpy()
    later_twin = np.concatenate((ts[1:] == ts[:-1], [False]))
    if run.fire("duplicate_ts", later_twin, run.policy.duplicate_ts,
                "timestamp appears again later; the last copy is kept"):
        run.drop(later_twin)


def _non_finite(run: _Run) -> None:
    bad_cols = {c: ~np.isfinite(run.col(c)) for c in BAR_COLS}
    bad_cols = {c: m for c, m in bad_cols.items() if m.any()}
    if not bad_cols:
        return
    bad_any = np.logical_or.reduce(list(bad_cols.values()))
    first = next(iter(bad_cols))
    i = int(np.flatnonzero(bad_cols[first])[0])
    value = run.df[first][i]
    if run.policy.non_finite == "repair":
        for c, bad in bad_cols.items():
            for s, e in _runs(bad):
                if s == 0 or e - s > run.policy.max_fill:
                    why = ("at the start: nothing to fill from" if s == 0 else
                           f"for {e - s} rows > max_fill={run.policy.max_fill}")
                    raise _error(run.where, "non_finite", int(run.df[_ROW][s]),
                                 int(run.df[_TS][s]), f"{c} not finite {why}")
    run.fire("non_finite", bad_any, run.policy.non_finite, f"{', '.join(bad_cols)} not finite"
             + (" (forward filled)" if run.policy.non_finite == "repair" else ""), value)
    run.df = run.df.with_columns(
        pl.when(pl.col(c).is_finite()).then(pl.col(c)).otherwise(None).forward_fill().alias(c)
        for c in bad_cols
    )


def _non_positive(run: _Run) -> None:
    bad = np.logical_or.reduce([run.col(c) <= 0 for c in PRICE_COLS]) | (run.col("volume") < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        cols = [c for c in BAR_COLS if (run.col(c)[i] <= 0 if c != "volume" else
                                         run.col(c)[i] < 0)]
        run.fire("non_positive", bad, run.policy.non_positive,
                 f"{cols[0]} must be {'>= 0' if cols[0] == 'volume' else '> 0'}; row dropped",
                 float(run.col(cols[0])[i]))
        run.drop(bad)


def _high_low(run: _Run) -> None:
    o, h, lo, c = (run.col(k) for k in PRICE_COLS)
    bad = (h < lo) | (o < lo) | (o > h) | (c < lo) | (c > h)
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    action = run.policy.high_low
    run.fire("high_low", bad, action, "high < low or open/close outside [low, high]"
             + ("; range widened" if action == "repair" else ""),
             {"open": float(o[i]), "high": float(h[i]), "low": float(lo[i]), "close": float(c[i])})
    if action == "repair":
        run.df = run.df.with_columns(
            pl.max_horizontal(*PRICE_COLS).alias("high"),
            pl.min_horizontal(*PRICE_COLS).alias("low"),
        )


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end_exclusive) of each run of True in ``mask``."""
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(),
                    strict=True))


def _zero_volume_run(run: _Run) -> None:
    n = run.policy.zero_volume_run_bars
    if n == 0:
        return
    bad = np.zeros(run.df.height, dtype=bool)
    for s, e in _runs(run.col("volume") == 0):
        if e - s >= n:
            bad[s:e] = True
    action = run.policy.zero_volume_run
    if run.fire("zero_volume_run", bad, action,
                f"{n} or more consecutive bars with volume 0"
                + ("; bars dropped" if action == "repair" else ""), 0.0) and action == "repair":
        run.drop(bad)


_OUTLIER_BLOCK = 8192
"""Rows the outlier rule checks at once while no row of them is an outlier."""


def _outlier_hits(prices: np.ndarray, refs: np.ndarray, med: float, scale: float,
                  p: ValidationPolicy) -> tuple[np.ndarray, np.ndarray]:
    """Each row's log returns from its reference close (one row per bar, one column per price)
    and which of them are outliers."""
    lr = np.log(prices / refs[:, None])
    dev = np.abs(lr - med)
    z = dev / scale if scale > 0 else np.where(dev > 0, np.inf, 0.0)
    return lr, (z > p.outlier_z) & (np.abs(lr) > p.outlier_min_return)


def outlier_rows(close: np.ndarray, prices: np.ndarray, med: float, scale: float,
                 p: ValidationPolicy) -> tuple[np.ndarray, np.ndarray]:
    """(bad, worst): the bars whose returns from the last good close are outliers, and each one's
    worst log return. Sequential by definition (a bad bar keeps the reference close where it
    was), but while no bar is bad every reference is the previous close: blocks of rows are
    checked at once, and only the rows after a bad one go one at a time until a good one."""
    n = close.size
    bad = np.zeros(n, dtype=bool)
    worst = np.zeros(n)
    ref = close[0]
    i = 1
    while i < n:
        end = min(n, i + _OUTLIER_BLOCK)
        refs = np.empty(end - i)
        refs[0] = ref
        refs[1:] = close[i:end - 1]
        lr, hit = _outlier_hits(prices[i:end], refs, med, scale, p)
        rows = hit.any(axis=1)
        if not rows.any():
            ref, i = close[end - 1], end
            continue
        k = int(np.argmax(rows))
        bad[i + k] = True
        worst[i + k] = float(lr[k][np.argmax(np.abs(lr[k]) * hit[k])])
        ref, i = refs[k], i + k + 1
        while i < n:  # after a bad bar: the same reference until a good bar
            lr1, hit1 = _outlier_hits(prices[i:i + 1], np.asarray([ref]), med, scale, p)
            if not hit1.any():
                ref, i = close[i], i + 1
                break
            bad[i] = True
            worst[i] = float(lr1[0][np.argmax(np.abs(lr1[0]) * hit1[0])])
            i += 1
    return bad, worst


def _outlier_return(run: _Run) -> None:
    p = run.policy
    if p.outlier_z == 0 or run.df.height < 3:
        return
    close = run.col("close")
    r = np.diff(np.log(close))
    med = float(np.median(r))
    scale = 1.4826 * float(np.median(np.abs(r - med)))
    prices = np.column_stack([run.col(k) for k in PRICE_COLS])
    bad, worst = outlier_rows(close, prices, med, scale, p)
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    action = p.outlier_return
    run.fire("outlier_return", bad, action,
             f"log return {worst[i]:+.3f} from the last good close {close[i - 1]:g} has robust "
             f"|z| > {p.outlier_z:g} and |r| > {p.outlier_min_return:g}"
             + ("; bar dropped" if action == "repair" else ""),
             float(close[i]))
    if action == "repair":
        run.drop(bad)


# ---------------------------------------------------------------- gaps on a trading calendar


def _calendar_name(policy: ValidationPolicy, symbol: str, daily: bool,
                   ts: np.ndarray | None = None) -> str:
    """``auto``: 24/7 for a pair (``BTC/USDT``) or for bars that trade on Saturdays (``BTCUSDT``
    hourly: a missing weekend is then a gap, not a closed market; FX, whose week opens on
    Sunday evening, has no Saturday bars); else the NYSE calendar for daily bars and the weekday
    rule for intraday ones."""
    if policy.calendar != "auto":
        return policy.calendar
    if "/" in symbol:
        return "24/7"
    if ts is not None and ts.size:
        weekday = (ts // DAY_NS + 3) % 7  # 1970-01-01 was a Thursday: Monday = 0
        if np.count_nonzero(weekday == 5) > max(2, ts.size // 200):
            return "24/7"
    return "XNYS" if daily else "weekdays"


def _sessions(name: str, first_ns: int, last_ns: int, holidays: list[str]) -> tuple[
        np.ndarray, np.ndarray]:
    """(open, close) ns of every trading session from the day of ``first_ns`` to ``last_ns``."""
    d0 = np.datetime64(first_ns, "ns").astype("datetime64[D]")
    d1 = np.datetime64(last_ns, "ns").astype("datetime64[D]")
    if name == "weekdays":
        days = np.arange(d0, d1 + 1)
        keep = np.is_busday(days)
        md = np.array([str(d)[5:] for d in days])
        full = np.array([str(d) for d in days])
        for h in holidays:
            keep &= (full != h) if len(h) == 10 else (md != h)
        opens = days[keep].astype("datetime64[ns]").astype(np.int64)
        return opens, opens + DAY_NS
    try:
        import exchange_calendars as xcals

        with warnings.catch_warnings():  # pandas deprecations inside exchange_calendars
            warnings.simplefilter("ignore")
            cal = xcals.get_calendar(name, start=str(d0), end=str(d1))
            schedule = cal.schedule
    except Exception as exc:  # unknown code, or data older than the calendar knows
        raise DataError(f"gap rule: calendar {name!r} unusable for {d0}..{d1}: {exc}") from None
    opens, closes = (schedule[k].dt.tz_localize(None).to_numpy().astype("datetime64[ns]")
                     .astype(np.int64) for k in ("open", "close"))
    return opens, closes


def _trading_time(ts: np.ndarray, opens: np.ndarray, closes: np.ndarray) -> np.ndarray:
    """Trading ns elapsed from the first session to each ts (time between sessions is free)."""
    before = np.concatenate(([0], np.cumsum(closes - opens)))
    k = np.searchsorted(opens, ts, side="right") - 1
    inside = np.clip(ts - opens[np.maximum(k, 0)], 0, (closes - opens)[np.maximum(k, 0)])
    return np.where(k >= 0, before[np.maximum(k, 0)] + inside, 0)


def _missing_bars(ts: np.ndarray, symbol: str, policy: ValidationPolicy) -> np.ndarray:
    """Per row: bars missing between it and the row before, counted on the calendar."""
    step = np.diff(ts)
    interval = float(np.median(step))
    daily = abs(interval - DAY_NS) <= 0.05 * DAY_NS
    name = _calendar_name(policy, symbol, daily, ts)
    if name == "24/7" or interval > DAY_NS * 1.05:
        missing = np.rint(step / interval) - 1
    else:
        opens, closes = _sessions(name, int(ts[0]), int(ts[-1]), policy.holidays)
        if name == "weekdays" and not daily and np.unique(ts // DAY_NS).size >= 5:
            # the weekday rule knows days, not hours: over a week or more of bars, take the
            # session's hours from the bars themselves (earliest to latest time of day seen),
            # so the night between two sessions of intraday stock bars is not a gap, while
            # 24/5 FX keeps whole days
            tod = ts % DAY_NS
            day_open = opens - opens % DAY_NS
            opens, closes = day_open + int(tod.min()), day_open + min(
                DAY_NS, int(tod.max() + interval))
        if opens.size == 0:  # no session of the calendar covers these bars: nothing to count on
            missing = np.zeros(step.size)
        elif daily:  # a daily bar stands for its date's session: count sessions in between
            day = ts - ts % DAY_NS
            idx = np.searchsorted(opens - opens % DAY_NS, day, side="left")
            missing = np.diff(idx) - 1
        else:
            tt = _trading_time(ts, opens, closes)
            interval = float(np.median(np.diff(tt)[np.diff(tt) > 0])) if (np.diff(tt) > 0).any() \
                else interval
            missing = np.rint(np.diff(tt) / interval) - 1
    return np.concatenate(([0], np.maximum(missing, 0))).astype(np.int64)


def _gap(run: _Run, symbol: str) -> None:
    limit = run.policy.gap_max_missing
    if limit < 0 or run.df.height < 3:
        return
    missing = _missing_bars(run.df[_TS].to_numpy(), symbol, run.policy)
    bad = missing > limit
    if not bad.any():
        return
    action = run.policy.gap
    i = int(np.flatnonzero(bad)[0])
    run.fire("gap", bad, action,
             f"{int(missing[i])} bar(s) missing before this row (> gap_max_missing={limit})"
             + ("; bars before the last gap dropped" if action == "repair" else ""),
             int(missing[i]))
    if action == "repair":
        last = int(np.flatnonzero(bad)[-1])
        run.df = run.df.slice(last)


# ---------------------------------------------------------------- entry point

_NUMERIC_RULES = (
    ("unsorted", _unsorted), ("duplicate_ts", _duplicate_ts), ("non_finite", _non_finite),
    ("non_positive", _non_positive), ("high_low", _high_low),
    ("zero_volume_run", _zero_volume_run), ("outlier_return", _outlier_return),
)


def _log(reports: list[RuleReport]) -> None:
    for r in reports:
        log.warning("%s", r.line())


def validate_bars(
    df: pl.DataFrame,
    symbol: str,
    policy: ValidationPolicy | None = None,
    *,
    ts_col: str = "ts",
) -> tuple[pl.DataFrame, ValidationReport]:
    """Check one symbol's bars against every rule; return (clean frame, report), or raise
    DataError naming symbol, rule, row, ts and value.

    The clean frame has the input's columns, ts as Int64 UTC ns, bar columns as Float64, sorted,
    with the repairs applied; every repair and warning is in the report and logged.
    """
    policy = policy or ValidationPolicy()
    run = _start(df, symbol, policy, ts_col)
    for name, rule in _NUMERIC_RULES:
        rule(run)
        if run.df.height == 0:
            raise DataError(f"{symbol}: no rows left after rule '{name}' (rule: empty)")
    _gap(run, symbol)
    out = run.df.with_columns(pl.col(_TS).alias(ts_col)).select(df.columns)
    _log(run.reports)
    return out, ValidationReport(symbol, df.height, out.height, run.reports)


__all__ = [
    "BAR_COLS",
    "PRICE_COLS",
    "RULES",
    "RuleReport",
    "ValidationPolicy",
    "ValidationReport",
    "coerce_bars",
    "validate_bars",
]
