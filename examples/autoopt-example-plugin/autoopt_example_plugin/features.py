"""Feature set ``example-returns``: lagged returns, rolling volatility, a run counter.

Causal: row t reads bars 0..t only. ``params`` are recorded in every release's manifest, and
``version`` must change whenever a column's meaning does (a release trained on another version is
refused at load).
"""

from __future__ import annotations

import numpy as np
import polars as pl

WINDOW = 10


class ReturnsFeatures:
    name = "example-returns"
    version = "1"
    params = {"window": WINDOW}

    def columns(self) -> list[str]:
        return ["ret1", "ret2", "ret3", "vol", "run"]

    def warmup(self) -> int:
        return WINDOW

    def lookback(self) -> int:
        return WINDOW + 1  # no recursive average: the warm-up is all a prediction needs

    def compute(self, bars: pl.DataFrame) -> pl.DataFrame:
        c = np.asarray(bars["close"].to_numpy(), dtype=np.float64)
        r = np.full(c.size, np.nan)
        r[1:] = c[1:] / c[:-1] - 1.0
        lag = [np.concatenate((np.full(k, np.nan), r[:-k])) if k else r for k in (0, 1, 2)]
        vol = np.full(c.size, np.nan)
        run = np.zeros(c.size)
        for t in range(c.size):
            if t >= WINDOW:
                vol[t] = float(np.std(r[t - WINDOW + 1: t + 1]))
            if t >= 2 and np.sign(r[t]) == np.sign(r[t - 1]):
                run[t] = run[t - 1] + np.sign(r[t])
            elif t >= 1 and not np.isnan(r[t]):
                run[t] = np.sign(r[t])
        run[:WINDOW] = np.nan
        return pl.DataFrame({"ret1": lag[0], "ret2": lag[1], "ret3": lag[2], "vol": vol,
                             "run": run})
