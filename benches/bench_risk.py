"""Risk and strategy benchmarks (issue 17).

1. The Rust strategy simulation (``autoopt._native.simulate_strategy``) against the Python
   reference loop it must equal (`autoopt.strategy.simulate.reference_loop`), same inputs, one
   thread, same run: goal >= 50x. Both get the same precomputed arrays; only the loop differs.
2. ``tune-risk``'s core: 200 NSGA-II trials per study on 5 years of daily bars x 5 symbols
   (nested walk-forward), goal <= 60 s (added with `autoopt.strategy.tuning`).
3. ``portfolio``: walk-forward over 10 years x 20 assets, goal <= 30 s (`autoopt.portfolio`).

Run: ``python -m pytest benches/bench_risk.py --benchmark-only --benchmark-columns=min,median -s``
or ``python benches/bench_risk.py [--all]`` for the ratio table (min of 7 rounds each) and,
with ``--all``, the tune-risk and portfolio wall times.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
import polars as pl
import pytest

from autoopt.strategy.params import StrategyParams
from autoopt.strategy.simulate import MarketInputs, simulate

N_BARS = 20_000
PARAMS = StrategyParams(entry_threshold=0.52, no_trade_band=0.02, min_hold_bars=2, vol_target=0.2,
                        kelly_cap=0.5, stop_loss_atr=2.0, take_profit_atr=3.0,
                        trailing_stop_atr=2.5, max_leverage=2.0, daily_loss_limit=0.02,
                        max_drawdown=0.1, halt_bars=24)


def market(n: int = N_BARS, seed: int = 0) -> tuple[MarketInputs, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    bars = pl.DataFrame({"ts": np.arange(n, dtype=np.int64) * 3_600 * 10**9, "open": open_,
                         "high": np.maximum(open_, close) * 1.004,
                         "low": np.minimum(open_, close) * 0.996, "close": close})
    inputs = MarketInputs.from_bars(bars, periods_per_year=8760)
    inputs.atr(PARAMS.atr_period)
    inputs.vol(PARAMS.vol_window)  # indicators cached: both loops time the loop only
    return inputs, rng.uniform(size=n)


def best_of(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


@pytest.fixture(scope="module")
def sim_inputs() -> tuple[MarketInputs, np.ndarray]:
    return market()


def test_simulate_native(benchmark, sim_inputs) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = f"strategy simulation, {N_BARS} bars"
    inputs, prob = sim_inputs
    out = benchmark(lambda: simulate(inputs, prob, PARAMS, cost_bps=2.0, engine="native"))
    assert out.returns.shape == (N_BARS,)


def test_simulate_python_reference(benchmark, sim_inputs) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = f"strategy simulation, {N_BARS} bars"
    inputs, prob = sim_inputs
    out = benchmark.pedantic(lambda: simulate(inputs, prob, PARAMS, cost_bps=2.0, engine="python"),
                             rounds=5, iterations=1)
    assert out.returns.shape == (N_BARS,)


def simulation_ratio(rounds: int = 7) -> tuple[float, float, float]:
    """(native s, python s, ratio): min of ``rounds`` each, same run, same inputs."""
    inputs, prob = market()
    a = simulate(inputs, prob, PARAMS, cost_bps=2.0, engine="native")
    b = simulate(inputs, prob, PARAMS, cost_bps=2.0, engine="python")
    assert np.array_equal(a.returns, b.returns)
    native = best_of(lambda: simulate(inputs, prob, PARAMS, cost_bps=2.0, engine="native"), rounds * 5)
    python = best_of(lambda: simulate(inputs, prob, PARAMS, cost_bps=2.0, engine="python"), rounds)
    return native, python, python / native


def test_simulation_ratio_at_least_50x(benchmark) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "strategy simulation ratio"
    native, python, ratio = benchmark.pedantic(simulation_ratio, rounds=1, iterations=1)
    print(f"\nstrategy simulation {N_BARS} bars: native {native * 1e3:.3f} ms, "
          f"python {python * 1e3:.1f} ms, ratio {ratio:.0f}x (goal >= 50x)")
    assert ratio >= 50


def tune_risk_wall(trials: int = 200, years: int = 5, n_symbols: int = 5) -> tuple[float, float]:
    """(seconds for out-of-sample probabilities, seconds for tuning + gate): ``tune-risk``'s
    work on ``years`` of daily bars x ``n_symbols`` with ``trials`` NSGA-II trials per study
    (nested walk-forward: 3 outer studies + the final one per symbol), as the CLI runs it
    minus process start and the event log."""
    from autoopt.config import Config
    from autoopt.pipeline.dataset import periods_per_year
    from autoopt.runtime import open_plugins
    from autoopt.strategy.gate import judge
    from autoopt.strategy.run import gate_config_of, settings_of
    from autoopt.strategy.signals import oos_probabilities
    from autoopt.strategy.tuning import tune_nested
    from autoopt.synthetic import planted_bars

    config = Config()
    plugins = open_plugins(config)
    settings = settings_of(config, trials)
    frames = {f"S{i}": planted_bars(100 + i, "daily", 0.6, n=252 * years) for i in range(n_symbols)}
    t0 = time.perf_counter()
    signals = {s: oos_probabilities(config, plugins, s, f) for s, f in frames.items()}
    t1 = time.perf_counter()
    for s, sig in signals.items():
        ts = sig.bars["ts"].to_numpy()
        inputs = MarketInputs.from_bars(sig.bars, periods_per_year=periods_per_year(ts))
        judge(tune_nested(s, inputs, sig.prob, settings=settings), gate_config_of(config))
    return t1 - t0, time.perf_counter() - t1


def portfolio_wall(years: int = 10, n_assets: int = 20, method: str = "hrp") -> float:
    """Seconds for ``portfolio``'s walk-forward (method and 1/N, monthly, lookback 252) over
    ``years`` of daily bars x ``n_assets``, skfolio's import excluded (imported first)."""
    import skfolio.optimization  # noqa: F401

    from autoopt.portfolio.run import run_portfolio

    rng = np.random.default_rng(5)
    n = 252 * years
    ts = (np.datetime64("2010-01-04") + np.arange(n).astype("timedelta64[D]")).astype(
        "datetime64[ns]").astype(np.int64)
    vol = np.geomspace(0.005, 0.03, n_assets)
    frames = {f"A{j:02d}": pl.DataFrame({"ts": ts, "close": 100 * np.cumprod(
        1 + rng.normal(0.0003, vol[j], n))}) for j in range(n_assets)}
    t0 = time.perf_counter()
    run_portfolio(frames, method, lookback=252, rebalance="1M", cost_bps=3.0)
    return time.perf_counter() - t0


def test_tune_risk_200_trials_5y_daily_5_symbols_within_60s(benchmark) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "tune-risk wall"
    probs, tune = benchmark.pedantic(tune_risk_wall, rounds=1, iterations=1)
    print(f"\ntune-risk 200 trials, 5y daily x 5 symbols: probabilities {probs:.1f} s, "
          f"tuning + gate {tune:.1f} s, total {probs + tune:.1f} s (goal <= 60 s)")
    assert probs + tune <= 60


@pytest.mark.parametrize("method", ["hrp", "mean_cvar"])
def test_portfolio_walk_forward_10y_20_assets_within_30s(benchmark, method: str) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "portfolio wall"
    wall = benchmark.pedantic(lambda: portfolio_wall(method=method), rounds=1, iterations=1)
    print(f"\nportfolio {method} walk-forward 10y daily x 20 assets: {wall:.1f} s (goal <= 30 s)")
    assert wall <= 30


def main() -> int:
    native, python, ratio = simulation_ratio()
    print(f"strategy simulation, {N_BARS} bars, one thread, min of rounds, same run:")
    print(f"  rust   {native * 1e3:9.3f} ms")
    print(f"  python {python * 1e3:9.1f} ms")
    print(f"  ratio  {ratio:9.0f}x   (goal >= 50x)")
    if "--all" in sys.argv:
        probs, tune = tune_risk_wall()
        print(f"tune-risk 200 trials, 5y daily x 5 symbols: probabilities {probs:.1f} s + "
              f"tuning/gate {tune:.1f} s = {probs + tune:.1f} s (goal <= 60 s)")
        for method in ("inverse_vol", "hrp", "risk_parity", "mean_cvar", "min_cdar"):
            print(f"portfolio {method:11s} walk-forward 10y x 20 assets: "
                  f"{portfolio_wall(method=method):.1f} s (goal <= 30 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
