"""Bar data sources: local files (CSV/Parquet) and the real bars bundled with `backtesting`.

URIs:
* ``file:<path>`` (or a bare path): ``.csv`` or ``.parquet``; either one symbol per file (the
  symbol is the file stem) or a long table with a ``symbol`` column. A directory loads every
  CSV/Parquet file inside it.
* ``bundled:<NAME>[,<NAME>...]``: hourly EURUSD and daily GOOG (and monthly BTCUSD) bars that
  ship inside the ``backtesting`` package; real market data that needs no network.

Column names are matched case-insensitively; the time column may be named ts, time, timestamp,
date, datetime or be the unnamed first column. Output: ts (UTC ns, Int64), open, high, low,
close, volume (Float64), sorted as found; validation is a separate, explicit step.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from autoopt.errors import DataError
from autoopt.plugins import hookimpl

BAR_COLUMNS = ("open", "high", "low", "close", "volume")
_TIME_NAMES = ("ts", "time", "timestamp", "date", "datetime", "")


def _normalise(df: pl.DataFrame, origin: str) -> pl.DataFrame:
    """Rename to canonical columns and convert the time column to UTC nanoseconds."""
    lower = {c: c.strip().lower() for c in df.columns}
    df = df.rename(lower)
    time_col = next((c for c in _TIME_NAMES if c in df.columns), None)
    if time_col is None:
        raise DataError(f"{origin}: no time column (expected one of ts/time/timestamp/date/datetime)")
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{origin}: missing bar columns {missing}")
    ts = df[time_col]
    if ts.dtype == pl.String:
        ts = ts.str.to_datetime(time_zone="UTC", strict=False)
        if ts.null_count() > df[time_col].null_count():
            bad = df[time_col].filter(ts.is_null()).head(1).to_list()
            raise DataError(f"{origin}: unparseable timestamp {bad[0]!r} in column {time_col!r}")
    if ts.dtype == pl.Date:
        ts = ts.cast(pl.Datetime("ns", "UTC"))
    if isinstance(ts.dtype, pl.Datetime):
        if ts.dtype.time_zone is None:
            ts = ts.dt.replace_time_zone("UTC")
        ts = ts.dt.convert_time_zone("UTC").dt.cast_time_unit("ns").dt.epoch("ns")
    elif ts.dtype.is_integer():
        ts = ts.cast(pl.Int64)
    else:
        raise DataError(f"{origin}: time column {time_col!r} has unsupported type {ts.dtype}")
    cols = [ts.alias("ts").cast(pl.Int64)]
    cols += [pl.col(c).cast(pl.Float64, strict=False) for c in BAR_COLUMNS]
    extra = ["symbol"] if "symbol" in df.columns else []
    return df.select(*cols, *extra)


def _read_table(path: Path) -> pl.DataFrame:
    if path.suffix.lower() == ".parquet":
        return pl.read_parquet(path)
    if path.suffix.lower() == ".csv":
        return pl.read_csv(path, infer_schema_length=10_000)
    raise DataError(f"{path}: unsupported file type {path.suffix!r} (use .csv or .parquet)")


def _split_symbols(df: pl.DataFrame, default_symbol: str) -> dict[str, pl.DataFrame]:
    if "symbol" not in df.columns:
        return {default_symbol: df}
    out = {}
    for (symbol,), part in df.group_by("symbol", maintain_order=True):
        out[str(symbol)] = part.drop("symbol")
    return out


def _select(frames: dict[str, pl.DataFrame], symbols: Sequence[str] | None, origin: str) -> dict[str, pl.DataFrame]:
    if not symbols:
        return frames
    missing = [s for s in symbols if s not in frames]
    if missing:
        raise DataError(f"{origin}: symbols {missing} not found; available: {sorted(frames)}")
    return {s: frames[s] for s in symbols}


class FileSource:
    """CSV/Parquet files: one symbol per file, or long tables with a ``symbol`` column."""

    name = "file"
    scheme = "file"

    def load(self, uri: str, symbols: Sequence[str] | None = None) -> dict[str, pl.DataFrame]:
        target = Path(uri.split(":", 1)[1] if uri.startswith("file:") else uri).expanduser()
        if target.is_dir():
            paths = sorted(p for p in target.iterdir() if p.suffix.lower() in (".csv", ".parquet"))
            if not paths:
                raise DataError(f"{target}: directory holds no .csv or .parquet files")
        elif target.is_file():
            paths = [target]
        else:
            raise DataError(f"{target}: no such file or directory")
        frames: dict[str, pl.DataFrame] = {}
        for path in paths:
            table = _normalise(_read_table(path), str(path))
            for symbol, part in _split_symbols(table, path.stem).items():
                if symbol in frames:
                    raise DataError(f"{path}: symbol {symbol!r} appears in more than one file")
                frames[symbol] = part
        return _select(frames, symbols, str(target))


def bundled_path(name: str) -> Path:
    """Path of a CSV bundled with the ``backtesting`` package (EURUSD, GOOG, BTCUSD)."""
    import backtesting.test as bt_test

    path = Path(bt_test.__file__).parent / f"{name}.csv"
    if not path.is_file():
        raise DataError(f"bundled data {name!r} not found in the backtesting package")
    return path


class BundledSource:
    """Real bars shipped inside the ``backtesting`` package: hourly EURUSD, daily GOOG."""

    name = "bundled"
    scheme = "bundled"
    available = ("EURUSD", "GOOG", "BTCUSD")

    def load(self, uri: str, symbols: Sequence[str] | None = None) -> dict[str, pl.DataFrame]:
        spec = uri.split(":", 1)[1] if ":" in uri else ""
        names = [n.strip() for n in spec.split(",") if n.strip()] or list(symbols or ["EURUSD", "GOOG"])
        unknown = [n for n in names if n not in self.available]
        if unknown:
            raise DataError(f"{uri}: unknown bundled symbols {unknown}; available: {list(self.available)}")
        frames = {n: _normalise(_read_table(bundled_path(n)), f"bundled:{n}") for n in names}
        return _select(frames, symbols, uri)


@hookimpl
def autoopt_register_data_sources() -> list[object]:
    return [FileSource(), BundledSource()]
