"""Risk overlays: simulation semantics on the strategy kernel, the built-in tuner (portfolio
weights: tests/test_portfolio.py)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from autoopt.errors import DataError
from autoopt.plugins import load_plugins
from autoopt.plugins.interfaces import Costs, RiskTask
from autoopt.risk import RiskParams, simulate
from autoopt.validation.metrics import strategy_returns

HOUR_NS = 3_600 * 10**9


def _bars(close: np.ndarray, spread: float = 0.002) -> pl.DataFrame:
    close = np.asarray(close, dtype=float)
    open_ = np.concatenate(([close[0]], close[:-1]))
    return pl.DataFrame(
        {
            "ts": np.arange(close.size, dtype=np.int64) * HOUR_NS,
            "open": open_,
            "high": np.maximum(open_, close) * (1 + spread),
            "low": np.minimum(open_, close) * (1 - spread),
            "close": close,
            "volume": np.ones(close.size),
        }
    )


def _walk(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))


def test_neutral_overlay_equals_plain_strategy_returns() -> None:
    close = _walk(500, 1)
    pos = np.sign(np.random.default_rng(2).normal(size=500))
    out = simulate(_bars(close), pos, RiskParams(), periods_per_year=8760, cost_bps=3.0)
    fwd = close[1:] / close[:-1] - 1
    np.testing.assert_allclose(out[1:], strategy_returns(pos[:-1], fwd, fee_bps=3.0), rtol=0, atol=1e-15)
    assert out[0] == 0.0


def test_stop_loss_caps_the_loss_of_a_crash() -> None:
    close = np.concatenate((np.full(30, 100.0), [100.0, 80.0, 70.0, 60.0]))
    pos = np.ones(close.size)
    plain = simulate(_bars(close), pos, RiskParams(), periods_per_year=8760)
    stopped = simulate(_bars(close), pos, RiskParams(stop_loss_atr=2.0), periods_per_year=8760)
    assert np.prod(1 + plain) < 0.61
    # the stop is ~2 ATR below 100 (ATR ~0.4 on the flat part, but the gap fills at the open)
    assert stopped[31] > plain[31] or stopped[31] == pytest.approx(plain[31])
    assert np.all(stopped[32:] == 0.0)  # flat after the stop until the model changes direction


def test_drawdown_limit_halts_trading() -> None:
    close = 100 * np.cumprod(np.full(60, 0.99))
    pos = np.ones(60)
    out = simulate(_bars(close), pos, RiskParams(max_drawdown=0.05, halt_bars=100), periods_per_year=8760)
    equity = np.cumprod(1 + out)
    assert 1 - equity.min() < 0.07
    assert np.count_nonzero(out) < 10


def test_bad_input_is_named() -> None:
    with pytest.raises(DataError, match="positions has shape"):
        simulate(_bars(_walk(10, 0)), np.ones(9), RiskParams(), periods_per_year=1)
    with pytest.raises(DataError, match=r"within \[-1, 1\]"):
        simulate(_bars(_walk(10, 0)), np.full(10, 2.0), RiskParams(), periods_per_year=1)


def test_fractional_positions_keep_their_size() -> None:
    close = _walk(300, 4)
    pos = np.random.default_rng(5).uniform(-1, 1, 300)
    out = simulate(_bars(close), pos, RiskParams(), periods_per_year=8760, cost_bps=2.0)
    fwd = close[1:] / close[:-1] - 1
    np.testing.assert_allclose(out[1:], strategy_returns(pos[:-1], fwd, fee_bps=2.0), atol=1e-12)


def test_builtin_tuner_is_registered_deterministic_and_never_worse_out_of_sample() -> None:
    tuner = load_plugins().component("risk_tuner", "stops-sizing")
    close = _walk(1500, 11)
    momentum = np.sign(np.concatenate(([0.0], np.diff(close))))
    task = RiskTask(symbol="SYN", bars=_bars(close), positions=momentum, costs=Costs(fee_bps=1.0), seed=5)
    tuner.n_trials = 15
    first = tuner.tune(task)
    assert first == tuner.tune(task)
    assert set(first) >= {"stop_loss_atr", "vol_target", "max_drawdown"}
    chosen = tuner.evaluate(task, RiskParams.from_dict(first))
    neutral = tuner.evaluate(task, RiskParams())
    assert chosen["oos_sharpe"] >= neutral["oos_sharpe"]
