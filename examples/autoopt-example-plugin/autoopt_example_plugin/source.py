"""Data source ``synth:SYMBOL?seed=3&persistence=0.7&n=1500``: seeded bars with a planted edge
(`autoopt.synthetic.planted_bars`), hourly."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qs

import polars as pl

from autoopt.errors import DataError


class SynthSource:
    name = "synth"
    scheme = "synth"

    def load(self, uri: str, symbols: Sequence[str] | None = None) -> dict[str, pl.DataFrame]:
        from autoopt.synthetic import planted_bars

        spec = uri.split(":", 1)[1] if ":" in uri else ""
        symbol, _, query = spec.partition("?")
        if not symbol:
            raise DataError(f"{uri}: name the symbol, e.g. synth:EDGE?seed=3")
        q = {k: v[-1] for k, v in parse_qs(query).items()}
        try:
            bars = planted_bars(int(q.get("seed", 0)), "hourly",
                                float(q.get("persistence", 0.7)), n=int(q.get("n", 1500)))
        except ValueError as exc:
            raise DataError(f"{uri}: {exc}") from None
        if symbols is not None and symbol not in symbols:
            return {}
        return {symbol: bars}
