"""Synthetic bars with model probabilities of a known quality, for tests, benchmarks and demos.

Why: whether tuning *helps* can only be checked where the truth is known. ``edge=True`` plants
an informed minority: on a share ``informed`` of bars the probability leans, by 0.1 to 0.3, the
way the next bar really goes; elsewhere it is noise within 0.08 of 0.5. A threshold that trades
only confident bars then beats trading every bar after costs. ``edge=False`` is a random walk
with noise probabilities: nothing to find.
"""

from __future__ import annotations

import numpy as np
import polars as pl

DAY_NS = 86_400 * 10**9


def bars_with_probabilities(n: int, seed: int, *, edge: bool, informed: float = 0.3,
                            step_ns: int = DAY_NS, vol: float = 0.01,
                            start_ns: int = 1_577_836_800 * 10**9) -> tuple[pl.DataFrame, np.ndarray]:
    """(bars with ts/open/high/low/close/volume, probabilities aligned with them)."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0, vol, n)
    close = 100 * np.exp(np.cumsum(r))
    open_ = np.concatenate(([close[0]], close[:-1])) * np.exp(rng.normal(0, vol / 5, n))
    spread = rng.uniform(0.001, 0.006, n)
    bars = pl.DataFrame({
        "ts": start_ns + np.arange(n, dtype=np.int64) * step_ns,
        "open": open_,
        "high": np.maximum(open_, close) * (1 + spread),
        "low": np.minimum(open_, close) * (1 - spread),
        "close": close,
        "volume": np.full(n, 1_000.0),
    })
    nxt = np.concatenate((np.diff(np.log(close)), [0.0]))
    prob = 0.5 + rng.uniform(-0.08, 0.08, n)
    if edge:
        inf = rng.uniform(size=n) < informed
        prob[inf] = 0.5 + np.sign(nxt[inf]) * rng.uniform(0.1, 0.3, int(inf.sum()))
    return bars, prob


__all__ = ["bars_with_probabilities"]
