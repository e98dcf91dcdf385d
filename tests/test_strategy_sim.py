"""Strategy simulation: the Rust kernel equals the Python reference, no look-ahead, the intrabar
rule (the worse level first), neutral parameters are the pipeline's own strategy."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoopt.errors import DataError
from autoopt.strategy.params import NEUTRAL, StrategyParams
from autoopt.strategy.simulate import (
    EXIT_STOP,
    EXIT_TAKE_PROFIT,
    EXIT_TRAIL,
    MarketInputs,
    simulate,
    simulate_bars,
)
from autoopt.validation.metrics import positions_from_proba, strategy_returns

HOUR_NS = 3_600 * 10**9


def _bars(close: np.ndarray, spread: np.ndarray | float = 0.003, gap: np.ndarray | None = None,
          step_ns: int = HOUR_NS) -> pl.DataFrame:
    close = np.asarray(close, dtype=float)
    open_ = np.concatenate(([close[0]], close[:-1])) * (1.0 if gap is None else gap)
    return pl.DataFrame({
        "ts": np.arange(close.size, dtype=np.int64) * step_ns,
        "open": open_,
        "high": np.maximum(open_, close) * (1 + spread),
        "low": np.minimum(open_, close) * (1 - spread),
        "close": close,
    })


def _same(a, b) -> None:  # type: ignore[no-untyped-def]
    for name in ("returns", "exposure", "turnover", "exits"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


params_st = st.builds(
    StrategyParams,
    entry_threshold=st.floats(0.5, 0.7),
    no_trade_band=st.sampled_from([0.0, 0.02, 0.1]),
    min_hold_bars=st.integers(0, 5),
    vol_target=st.sampled_from([0.0, 0.1, 0.5]),
    kelly_cap=st.sampled_from([0.0, 0.2, 1.0]),
    stop_loss_atr=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
    take_profit_atr=st.sampled_from([0.0, 0.7, 2.0]),
    trailing_stop_atr=st.sampled_from([0.0, 0.8, 2.5]),
    max_leverage=st.sampled_from([0.5, 1.0, 3.0]),
    daily_loss_limit=st.sampled_from([0.0, 0.005, 0.02]),
    max_drawdown=st.sampled_from([0.0, 0.02, 0.1]),
    halt_bars=st.integers(0, 10),
    vol_window=st.integers(2, 30),
    atr_period=st.integers(1, 20),
)


@settings(max_examples=120, deadline=None)
@given(params=params_st, seed=st.integers(0, 2**32 - 1), n=st.integers(3, 300),
       nan_share=st.sampled_from([0.0, 0.1]), cost=st.sampled_from([0.0, 3.0]),
       step=st.sampled_from([HOUR_NS, 4 * HOUR_NS, 24 * HOUR_NS]))
def test_rust_kernel_equals_python_reference(params: StrategyParams, seed: int, n: int,
                                             nan_share: float, cost: float, step: int) -> None:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    gap = np.exp(rng.normal(0, 0.004, n))
    bars = _bars(close, spread=rng.uniform(0, 0.01, n), gap=gap, step_ns=step)
    prob = rng.uniform(0, 1, n)
    prob[rng.uniform(size=n) < nan_share] = np.nan
    inputs = MarketInputs.from_bars(bars, periods_per_year=365.25 * 86_400e9 / step)
    native = simulate(inputs, prob, params, cost_bps=cost, engine="native")
    python = simulate(inputs, prob, params, cost_bps=cost, engine="python")
    _same(native, python)
    assert np.all(np.isfinite(native.returns))


RICH = StrategyParams(entry_threshold=0.52, no_trade_band=0.03, min_hold_bars=2, vol_target=0.3,
                      kelly_cap=0.4, stop_loss_atr=1.0, take_profit_atr=2.0, trailing_stop_atr=1.5,
                      max_leverage=2.0, daily_loss_limit=0.01, max_drawdown=0.05, halt_bars=4)


@pytest.mark.parametrize("engine", ["native", "python"])
def test_no_look_ahead_changing_future_bars_changes_nothing_before(engine: str) -> None:
    rng = np.random.default_rng(3)
    n, k = 400, 250
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    prob = rng.uniform(size=n)
    other = close.copy()
    other[k + 1:] = other[k + 1:] * np.exp(np.cumsum(rng.normal(0.01, 0.05, n - k - 1)))
    prob2 = prob.copy()
    prob2[k + 1:] = 1 - prob2[k + 1:]
    a = simulate_bars(_bars(close), prob, RICH, periods_per_year=8760, cost_bps=2, engine=engine)
    b = simulate_bars(_bars(other), prob2, RICH, periods_per_year=8760, cost_bps=2, engine=engine)
    # bar k+1's open comes from close k: equal; returns through bar k and decisions through k
    np.testing.assert_array_equal(a.returns[: k + 1], b.returns[: k + 1])
    np.testing.assert_array_equal(a.exposure[: k + 1], b.exposure[: k + 1])
    assert not np.array_equal(a.returns[k + 1:], b.returns[k + 1:])  # the change did reach later bars


def _one_bar(o: float, h: float, low: float, c: float, side: float) -> pl.DataFrame:
    """Flat at 100 (ATR 1) for 30 bars, entry at the close of bar 29, then one test bar."""
    n = 30
    close = np.full(n, 100.0)
    frame = pl.DataFrame({"ts": np.arange(n + 1, dtype=np.int64) * HOUR_NS,
                          "open": np.r_[close, o], "high": np.r_[close + 0.5, h],
                          "low": np.r_[close - 0.5, low], "close": np.r_[close, c]})
    return frame


@pytest.mark.parametrize("engine", ["native", "python"])
def test_intrabar_rule_takes_the_worse_level_first(engine: str) -> None:
    prob = np.full(31, 0.5)
    prob[29] = 0.9  # long decided at the close of bar 29, at 100 with ATR 1
    sl_tp = StrategyParams(stop_loss_atr=2.0, take_profit_atr=3.0, atr_period=5)
    # bar 30 touches both 98 (stop) and 103 (target): the stop is taken, -2%
    both = simulate_bars(_one_bar(100, 104, 97, 101, 1), prob, sl_tp, periods_per_year=8760,
                         engine=engine)
    assert both.exits[30] == EXIT_STOP
    assert both.returns[30] == pytest.approx(-0.02, abs=1e-12)
    # only the target touched: +3%
    tp = simulate_bars(_one_bar(100, 104, 99, 101, 1), prob, sl_tp, periods_per_year=8760, engine=engine)
    assert tp.exits[30] == EXIT_TAKE_PROFIT and tp.returns[30] == pytest.approx(0.03, abs=1e-12)
    # a gap open beyond the target fills at the open even if the low then touches the stop
    gap_up = simulate_bars(_one_bar(105, 106, 97, 101, 1), prob, sl_tp, periods_per_year=8760,
                           engine=engine)
    assert gap_up.exits[30] == EXIT_TAKE_PROFIT and gap_up.returns[30] == pytest.approx(0.05, abs=1e-12)
    # a gap through the stop fills at the open (worse than the stop)
    gap_down = simulate_bars(_one_bar(95, 96, 94, 95, 1), prob, sl_tp, periods_per_year=8760,
                             engine=engine)
    assert gap_down.exits[30] == EXIT_STOP and gap_down.returns[30] == pytest.approx(-0.05, abs=1e-12)
    # short side mirrored: touching 102 (stop) and 97 (target) takes the stop
    prob_s = np.full(31, 0.5)
    prob_s[29] = 0.1
    short = simulate_bars(_one_bar(100, 103, 96, 99, -1), prob_s, sl_tp, periods_per_year=8760,
                          engine=engine)
    assert short.exits[30] == EXIT_STOP and short.returns[30] == pytest.approx(-0.02, abs=1e-12)
    # the tighter of stop and trailing stop is the adverse level
    trail = StrategyParams(stop_loss_atr=3.0, trailing_stop_atr=1.0, take_profit_atr=3.0, atr_period=5)
    tr = simulate_bars(_one_bar(100, 104, 98.5, 101, 1), prob, trail, periods_per_year=8760, engine=engine)
    assert tr.exits[30] == EXIT_TRAIL and tr.returns[30] == pytest.approx(-0.01, abs=1e-12)


def test_neutral_params_are_the_pipelines_strategy() -> None:
    rng = np.random.default_rng(9)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))
    prob = rng.uniform(size=300)
    out = simulate_bars(_bars(close), prob, NEUTRAL, periods_per_year=8760, cost_bps=3.0)
    fwd = close[1:] / close[:-1] - 1
    ref = strategy_returns(positions_from_proba(prob[:-1]), fwd, fee_bps=3.0)
    np.testing.assert_allclose(out.returns[1:], ref, rtol=0, atol=1e-15)


def test_bad_params_and_inputs_are_named_in_one_line() -> None:
    with pytest.raises(DataError, match="entry_threshold=0.4 is outside"):
        StrategyParams(entry_threshold=0.4)
    with pytest.raises(DataError, match=r"unknown parameters \['stop'\]"):
        StrategyParams.from_dict({"stop": 1.0})
    with pytest.raises(DataError, match="min_hold_bars must be a whole number"):
        StrategyParams.from_dict({"min_hold_bars": 1.5})
    bars = _bars(np.linspace(100, 101, 10))
    with pytest.raises(DataError, match="probabilities have shape"):
        simulate_bars(bars, np.full(9, 0.5), NEUTRAL, periods_per_year=1)
    with pytest.raises(DataError, match=r"probabilities must be in \[0, 1\]"):
        simulate_bars(bars, np.full(10, 2.0), NEUTRAL, periods_per_year=1)
    with pytest.raises(DataError, match="lack column 'high'"):
        simulate_bars(bars.drop("high"), np.full(10, 0.5), NEUTRAL, periods_per_year=1)
    p = RICH
    assert StrategyParams.from_json(p.to_json()) == p
