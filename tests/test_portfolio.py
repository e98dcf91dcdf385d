"""Portfolio weights by skfolio: bounds and sum, the walk-forward's timing, drift and costs, the
1/N gate both ways, and `autoopt portfolio` end to end with a release and its event."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from autoopt.cli import app
from autoopt.errors import DataError
from autoopt.events import PortfolioWeightsReleased
from autoopt.log import EventLog, NatsSettings
from autoopt.portfolio import METHODS
from autoopt.portfolio.release import current_weights, latest_weights
from autoopt.portfolio.run import run_portfolio
from autoopt.portfolio.walkforward import rebalance_points, walk_forward
from autoopt.portfolio.weights import fit_weights
from autoopt.registry import ModelRegistry
from autoopt.subjects import subject_filter_for_type


def _universe(n: int, k: int, seed: int, mode: str) -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    if mode == "vol":  # low-vol assets earn, the high-vol ones do not: 1/N overweights risk
        vol = np.geomspace(0.003, 0.04, k)
        r = rng.normal(np.where(vol > 0.03, 0.0, 0.0004), vol, (n, k))
    else:  # interchangeable assets: nothing beats 1/N
        r = rng.normal(0.0003, 0.01, (n, k))
    ts = (np.datetime64("2015-01-01") + np.arange(n).astype("timedelta64[D]")).astype(
        "datetime64[ns]").astype(np.int64)
    return {f"S{j:02d}": pl.DataFrame({"ts": ts, "open": 100 * np.cumprod(1 + r[:, j]),
                                       "high": 100 * np.cumprod(1 + r[:, j]) * 1.001,
                                       "low": 100 * np.cumprod(1 + r[:, j]) * 0.999,
                                       "close": 100 * np.cumprod(1 + r[:, j]),
                                       "volume": np.ones(n)}) for j in range(k)}


@pytest.mark.parametrize("method", METHODS)
def test_weights_sum_to_one_within_bounds(method: str) -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(0.0003, 1, (200, 5)) * np.array([0.005, 0.01, 0.02, 0.01, 0.03])
    w = fit_weights(r, method, max_weight=0.35)
    assert w.shape == (5,) and w.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(w >= 0) and np.all(w <= 0.35 + 1e-6)


def test_walk_forward_timing_drift_and_costs() -> None:
    rng = np.random.default_rng(1)
    n = 300
    r = rng.normal(0.0005, 0.01, (n, 3))
    ts = np.arange(n, dtype=np.int64) * 86_400 * 10**9
    # rebalancing once (every 1000 bars) is buy-and-hold of 1/N after the first trade's cost
    p = walk_forward(r, ts, "equal", lookback=50, rebalance="1000B", cost_bps=10)
    held = np.prod(1 + r[51:], axis=0).mean()  # 1/N bought at the close of bar 50, drifting
    first = 1 + r[51].mean()  # the cost is taken from the first bar's return
    assert np.prod(1 + p.returns) == pytest.approx(held / first * (first - 0.001), rel=1e-12)
    assert p.turnover[0] == pytest.approx(1.0) and np.all(p.turnover[1:] == 0)
    # no look-ahead: changing returns after bar 200 changes nothing on the path before it
    q = r.copy()
    q[201:] *= -3
    a = walk_forward(r, ts, "inverse_vol", lookback=50, rebalance="20B", cost_bps=5)
    b = walk_forward(q, ts, "inverse_vol", lookback=50, rebalance="20B", cost_bps=5)
    cut = 201 - 51
    np.testing.assert_array_equal(a.returns[:cut], b.returns[:cut])
    assert not np.array_equal(a.returns[cut:], b.returns[cut:])
    assert rebalance_points(ts, "20B", 50)[:3] == [50, 70, 90]
    with pytest.raises(DataError, match="--rebalance 'monthly'"):
        rebalance_points(ts, "monthly", 50)


def test_gate_beats_one_over_n_where_risk_differs_and_refuses_where_it_cannot() -> None:
    passed = run_portfolio(_universe(900, 6, 1, "vol"), "hrp", lookback=126, rebalance="1M",
                           cost_bps=5)
    assert passed.verdict.passed, passed.verdict.reasons
    assert passed.verdict.codes[0] == "beats_equal_weight"
    refused = run_portfolio(_universe(900, 6, 1, "iid"), "hrp", lookback=126, rebalance="1M",
                            cost_bps=5)
    assert not refused.verdict.passed and "below_equal_weight" in refused.verdict.codes
    for out in (passed, refused):
        assert sum(out.weights.values()) == pytest.approx(1.0)
        assert out.path.returns.size == out.equal.returns.size


async def _weights_events(url: str) -> tuple[list[PortfolioWeightsReleased], dict | None]:
    log = await EventLog.connect(NatsSettings(urls=[url]))
    try:
        events = [e async for e in log.replay(subject_filter_for_type(PortfolioWeightsReleased))]
        return events, await latest_weights(log, "core")
    finally:
        await log.close()


def test_portfolio_cli_releases_weights_that_beat_one_over_n(tmp_path: Path, nats_server: str) -> None:
    src = tmp_path / "bars"
    src.mkdir()
    for s, f in _universe(700, 4, 3, "vol").items():
        f.with_columns(pl.from_epoch("ts", time_unit="ns")).write_csv(src / f"{s}.csv")
    cfg = tmp_path / "autoopt.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n[nats]\nurls = ["{nats_server}"]\n')
    out = tmp_path / "p.json"
    res = CliRunner().invoke(app, ["--config", str(cfg), "portfolio", "--source", f"file:{src}",
                                   "--symbols", "S00,S01,S02,S03", "--method", "risk_parity",
                                   "--lookback", "100", "--rebalance", "1M", "--name", "core",
                                   "--release", "--json", str(out), "--report",
                                   str(tmp_path / "p.html")])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["passed"] and doc["release_id"] and "gate" in res.output
    (event,), engine_reads = asyncio.run(_weights_events(nats_server))
    assert event.portfolio == "core" and event.weights == doc["weights"] == engine_reads
    assert current_weights(ModelRegistry(tmp_path / "data"), "core") == doc["weights"]
    assert (tmp_path / "p.html").read_text().startswith("<!DOCTYPE html>")
    bad = CliRunner().invoke(app, ["--config", str(cfg), "portfolio", "--source", f"file:{src}",
                                   "--symbols", "S00,S01", "--method", "magic"])
    assert bad.exit_code == 2 and "unknown method 'magic'" in bad.output


def test_without_skfolio_the_error_names_the_extra() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['skfolio'] = None\n"
            "import numpy as np\n"
            "from autoopt.errors import PluginError\n"
            "from autoopt.portfolio.weights import fit_weights\n"
            "try:\n    fit_weights(np.random.default_rng(0).normal(size=(50, 3)), 'hrp')\n"
            "except PluginError as e:\n    print(e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert "pip install 'autoopt[portfolio]'" in proc.stdout
