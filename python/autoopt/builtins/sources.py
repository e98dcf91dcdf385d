"""Bar data sources: local files (CSV/Parquet) and the real bars bundled with `backtesting`.

URIs:
* ``file:<path>`` (or a bare path): ``.csv`` or ``.parquet``; either one symbol per file (the
  symbol is the file stem) or a long table with a ``symbol`` column. A directory loads every
  CSV/Parquet file inside it.
* ``bundled:<NAME>[,<NAME>...]``: hourly EURUSD and daily GOOG (and monthly BTCUSD) bars that
  ship inside the ``backtesting`` package; real market data that needs no network.

Column names are matched case-insensitively; the time column may be named ts, time, timestamp,
date, datetime or be the unnamed first column. Output: ts (UTC ns, Int64), open, high, low,
close, volume (Float64), in file order.

CSV cells are read as text and cast strictly by the one validation layer
(`autoopt.data.coerce_bars`), so a bad file fails with one line naming the file and the rule:
``data/x.csv: no rows (rule: empty)`` for an empty or header-only file, ``... rule
'not_numeric' violated at row 3 ...: column 'close' value 'abc' is not a number`` (rows count
data rows from 0), ``mixed_timezones`` for timestamps with different offsets. The remaining
rules (order, gaps, outliers...) run on each symbol's bars when they are ingested, before
anything is stored. Every symbol returned or asked for passes `autoopt.symbols.validate_symbol`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from autoopt.config import Config
from autoopt.data import ValidationPolicy, coerce_bars
from autoopt.errors import DataError
from autoopt.plugins import hookimpl
from autoopt.symbols import validate_symbol

BAR_COLUMNS = ("open", "high", "low", "close", "volume")
_TIME_NAMES = ("ts", "time", "timestamp", "date", "datetime", "")


_POLICY: list[ValidationPolicy] = [ValidationPolicy()]
"""The config's data policy (set by `autoopt_configure`), for the coercion rules."""


def _normalise(df: pl.DataFrame, origin: str) -> pl.DataFrame:
    """Rename to canonical columns; cast cells and the time column (UTC ns) strictly."""
    lower = {c: c.strip().lower() for c in df.columns}
    df = df.rename(lower)
    time_col = next((c for c in _TIME_NAMES if c in df.columns), None)
    if time_col is None:
        raise DataError(f"{origin}: no time column (expected one of ts/time/timestamp/date/datetime)")
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{origin}: missing bar columns {missing}")
    df, _ = coerce_bars(df, origin, _POLICY[0], ts_col=time_col)
    extra = ["symbol"] if "symbol" in df.columns else []
    return df.select(pl.col(time_col).alias("ts"), *BAR_COLUMNS, *extra)


def _read_table(path: Path) -> pl.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            return pl.read_parquet(path)
        if path.suffix.lower() == ".csv":
            return pl.read_csv(path, infer_schema=False)  # text cells: coerce_bars casts them
    except pl.exceptions.NoDataError:
        raise DataError(f"{path}: no rows (rule: empty)") from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: unreadable {path.suffix} file: {first}") from None
    raise DataError(f"{path}: unsupported file type {path.suffix!r} (use .csv or .parquet)")


def _split_symbols(df: pl.DataFrame, default_symbol: str) -> dict[str, pl.DataFrame]:
    if "symbol" not in df.columns:
        return {validate_symbol(default_symbol, "symbol"): df}
    out = {}
    for (symbol,), part in df.group_by("symbol", maintain_order=True):
        out[validate_symbol(str(symbol), "symbol")] = part.drop("symbol")
    return out


def _select(frames: dict[str, pl.DataFrame], symbols: Sequence[str] | None, origin: str) -> dict[str, pl.DataFrame]:
    for s in symbols or ():
        validate_symbol(s, "symbol")
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
def autoopt_configure(config: Config) -> None:
    _POLICY[0] = ValidationPolicy.from_config(config.pipeline.data_policy)


@hookimpl
def autoopt_register_data_sources() -> list[object]:
    return [FileSource(), BundledSource()]
