"""Backtest path figures: a hand-worked path, the equal-weight pool on the union of timestamps,
and `fill_metrics` on a hand-built policy result."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoopt.backtest.metrics import (
    METRIC_KEYS,
    fill_metrics,
    path_metrics,
    pooled_path,
    pooled_periods_per_year,
)
from autoopt.backtest.result import PolicyResult, SymbolPath
from autoopt.errors import DataError


def _path(
    symbol: str,
    ts: list[int],
    returns: list[float],
    positions: list[float],
    ages: list[float] | None = None,
    ppy: float = 252.0,
) -> SymbolPath:
    n = len(ts)
    return SymbolPath(
        symbol=symbol,
        ts=ts,
        returns=returns,
        positions=positions,
        model_age_s=ages if ages is not None else [0.0] * n,
        release_ids=["r1"] * n,
        periods_per_year=ppy,
    )


def test_path_metrics_hand_worked() -> None:
    # equity 1 -> 1.1 -> 1.045 -> 1.0241 -> 1.0241; peak 1.1, trough 1.0241
    # mean 0.0075, sd (ddof=1) sqrt(0.012675 / 3) = 0.065 -> per-bar SR 3/26, x sqrt(4)
    # downside deviation sqrt((0.05² + 0.02²) / 4) = sqrt(0.000725)
    # trades: +1 over bars 0-1 (1.1 * 0.95 - 1 = +4.5%, a win), -1 over bar 2 (-2%, a loss)
    # turnover: |1 - 0| + 0 + |-1 - 1| + |0 - -1| = 4 over 4 bars
    m = path_metrics([0.10, -0.05, -0.02, 0.0], [1.0, 1.0, -1.0, 0.0], periods_per_year=4)
    assert set(m) == set(METRIC_KEYS)
    total = 1.1 * 0.95 * 0.98 - 1.0
    mdd = 1.0 - 1.1 * 0.95 * 0.98 / 1.1
    assert m["total_return"] == pytest.approx(total)
    assert m["annual_return"] == pytest.approx(total)  # 4 bars at 4 a year: one year
    assert m["max_drawdown"] == pytest.approx(mdd)
    assert m["calmar"] == pytest.approx(total / mdd)
    assert m["sharpe"] == pytest.approx(2 * 3 / 26)
    assert m["sortino"] == pytest.approx(2 * 0.0075 / math.sqrt(0.000725))
    assert m["hit_rate"] == pytest.approx(0.5)
    assert m["trades"] == 2.0
    assert m["turnover"] == pytest.approx(1.0)
    assert m["n_bars"] == 4.0


def test_path_metrics_annualises_over_the_whole_path() -> None:
    # 8 bars at 4 a year are two years: the annual return is the square root of the total
    m = path_metrics([0.01] * 8, [1.0] * 8, periods_per_year=4)
    assert m["annual_return"] == pytest.approx(1.01**4 - 1.0)
    assert m["max_drawdown"] == 0.0
    assert m["calmar"] == math.inf
    assert m["trades"] == 1.0 and m["hit_rate"] == 1.0


def test_path_metrics_of_an_empty_path_are_zero() -> None:
    assert path_metrics([], [], 252.0) == dict.fromkeys(METRIC_KEYS, 0.0)


@pytest.mark.parametrize(
    ("returns", "positions", "ppy", "message"),
    [
        ([0.1, math.nan], [1.0, 1.0], 252.0, r"returns\[1\] is nan"),
        ([0.1, 0.2], [1.0], 252.0, "returns has 2 bars but positions 1"),
        ([0.1], [1.0], 0.0, "periods_per_year must be > 0"),
    ],
)
def test_path_metrics_refuses_bad_input(
    returns: list[float], positions: list[float], ppy: float, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        path_metrics(returns, positions, ppy)


def test_pooled_path_aligns_on_the_union_of_timestamps() -> None:
    paths = {
        "A": _path("A", [1, 2, 3], [0.01, 0.02, 0.03], [1.0, 1.0, -1.0]),
        "B": _path("B", [2, 3, 4], [0.10, 0.20, 0.30], [0.0, 1.0, 1.0], ppy=365.0),
    }
    ts, returns, positions = pooled_path(paths)
    assert ts.tolist() == [1, 2, 3, 4]
    # a symbol without a bar contributes 0 to the equal-weight mean
    assert returns == pytest.approx([0.005, 0.06, 0.115, 0.15])
    # positions are held from a symbol's last bar and flat before its first
    assert positions == pytest.approx([0.5, 0.5, 0.0, 0.0])
    assert pooled_periods_per_year(paths) == 365.0


def test_pooled_path_refuses_unordered_or_ragged_paths() -> None:
    with pytest.raises(DataError, match="A: ts must be strictly increasing"):
        pooled_path({"A": _path("A", [2, 1], [0.0, 0.0], [0.0, 0.0])})
    ragged = _path("B", [1, 2], [0.0, 0.0], [0.0, 0.0])
    ragged.returns = [0.0]
    with pytest.raises(DataError, match="B: ts, returns and positions have 2, 1 and 2 rows"):
        pooled_path({"B": ragged})
    with pytest.raises(DataError, match="no paths"):
        pooled_path({})


def test_fill_metrics_per_symbol_pooled_and_model_age() -> None:
    result = PolicyResult(
        policy="weekly",
        settings={},
        paths={
            "A": _path("A", [1, 2, 3], [0.01, 0.02, 0.03], [1.0, 1.0, -1.0], [math.nan, 10, 20]),
            "B": _path("B", [2, 3, 4], [0.10, 0.20, 0.30], [0.0, 1.0, 1.0], [30, 40, 50]),
        },
    )
    assert fill_metrics(result) is result
    assert set(result.metrics) == {"A", "B", "pooled"}
    a = result.metrics["A"]
    assert a == path_metrics([0.01, 0.02, 0.03], [1.0, 1.0, -1.0], 252.0)
    pooled = result.metrics["pooled"]
    assert pooled["n_bars"] == 4.0
    assert pooled["total_return"] == pytest.approx(np.prod([1.005, 1.06, 1.115, 1.15]) - 1.0)
    # gross: A changes by 1 + 0 + 2, B by 0 + 1 + 0: 4 units over 2 symbols x 4 bars
    assert pooled["turnover"] == pytest.approx(0.5)
    assert pooled["trades"] == a["trades"] + result.metrics["B"]["trades"] == 3.0
    # the bar where no model traded (NaN) is left out
    assert result.mean_model_age_s == pytest.approx(150 / 5)


def test_fill_metrics_without_any_model_has_age_zero() -> None:
    result = PolicyResult(
        policy="never",
        settings={},
        paths={"A": _path("A", [1, 2], [0.0, 0.0], [0.0, 0.0], [math.nan, math.nan])},
    )
    fill_metrics(result)
    assert result.mean_model_age_s == 0.0
    assert result.metrics["pooled"]["sharpe"] == 0.0
