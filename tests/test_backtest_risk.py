"""Risk re-tuning in the policy backtest (issue 17.4): every policy trades through the strategy
simulator with the params in force at each bar, and a policy with ``[risk] retune =
"with_retrain"`` re-tunes them after each retrain (real signals, NSGA-II nested walk-forward,
the strategy gate), content-addressed and shared, released after the training delay.

The planted case (`_bars`): hourly bars whose return sign persists with probability 0.85 after
a large move and 0.5 after a small one, so the model is right when it is confident and
guessing otherwise: neutral params trade the guesses too, an entry threshold skips them (what
the tuning must find to beat neutral). The policies start from deliberately bad params: a tight
stop and take profit with a long minimum hold, which kill the edge.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
import pytest

from autoopt.backtest.book import Book
from autoopt.backtest.policies import parse_policies, preset
from autoopt.backtest.result import BacktestResult
from autoopt.backtest.run import run_backtest
from autoopt.config import Config, PipelineConfig
from autoopt.errors import ConfigError
from autoopt.strategy.params import NEUTRAL, StrategyParams
from autoopt.strategy.simulate import MarketInputs
from autoopt.validation.metrics import positions_from_proba

N_BARS = 3_000
WARMUP = 0.5
DELAY_S = 5 * 3600.0
BAD = '[risk.params]\nmin_hold_bars = 8\nstop_loss_atr = 0.3\ntake_profit_atr = 0.4\n'
WEEKLY = ('[policy]\nschedule = "0 3 * * 1"\n[policy.drift]\nenabled = false\n'
          '[policy.degradation]\nenabled = false\n')
RETUNE = '[risk]\nretune = "with_retrain"\ntrials = 40\nouter_folds = 2\nturnover_cap = 2.0\n'


def _bars(seed: int, n: int = N_BARS, sigma: float = 0.004) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    mag = np.abs(rng.normal(0.0, sigma, n))
    big = mag > np.median(mag)
    u = rng.random(n)
    sign = np.ones(n)
    for t in range(1, n):
        sign[t] = sign[t - 1] if u[t] < (0.85 if big[t - 1] else 0.5) else -sign[t - 1]
    close = 100.0 * np.exp(np.cumsum(sign * mag))
    open_ = np.concatenate(([100.0], close[:-1]))
    wiggle = np.abs(rng.normal(0.0, sigma / 4, n))
    ts = 1_500_000_000 * 10**9 + np.arange(n, dtype=np.int64) * 3600 * 10**9
    return pl.DataFrame({"ts": ts, "open": open_, "high": np.maximum(open_, close) * (1 + wiggle),
                         "low": np.minimum(open_, close) * (1 - wiggle), "close": close,
                         "volume": rng.uniform(1_000, 5_000, n)})


def _config(tmp: Path) -> Config:
    return msgspec.structs.replace(
        Config(data_dir=str(tmp / "data")),
        pipeline=PipelineConfig(trials=4, seed=0, train_window_bars=800))


def _policies(tmp: Path) -> str:
    files = {"stopped": WEEKLY + BAD, "stopped-retuned": WEEKLY + RETUNE + BAD,
             "stopped-retuned-again": WEEKLY + RETUNE + BAD}
    paths = []
    for name, text in files.items():
        path = tmp / f"{name}.toml"
        path.write_text(f'name = "{name}"\n' + text)
        paths.append(str(path))
    return ",".join(["weekly", *paths])


def _run(tmp: Path, frames: dict[str, pl.DataFrame], policies: str) -> BacktestResult:
    cfg = _config(tmp)
    return asyncio.run(run_backtest(cfg, frames, parse_policies(policies, cfg.policy),
                                    warmup=WARMUP, train_delay_s=DELAY_S,
                                    cache_dir=tmp / "cache"))


@pytest.fixture(scope="module")
def risk_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, BacktestResult]:
    tmp = tmp_path_factory.mktemp("risk")
    policies = _policies(tmp)
    return tmp, policies, _run(tmp, {"EDGE": _bars(1)}, policies)


def test_retuning_recovers_the_edge_bad_params_kill(
        risk_run: tuple[Path, str, BacktestResult]) -> None:
    _, _, res = risk_run
    stopped, retuned = res.policy("stopped"), res.policy("stopped-retuned")
    assert stopped.params_releases == stopped.params_refusals == stopped.risk_compute_s == 0
    assert retuned.params_releases >= 1, [m.text for m in retuned.paths["EDGE"].markers]
    assert retuned.params_releases + retuned.params_refusals + retuned.params_failures \
        == retuned.retrains + 1  # after every retrain, and after the warm-up model
    assert retuned.retrains == stopped.retrains >= 3
    assert retuned.risk_compute_s > 0 and retuned.compute_s > stopped.compute_s
    sharpe = {p.policy: p.metrics["pooled"]["sharpe"] for p in res.policies}
    assert sharpe["stopped-retuned"] > sharpe["stopped"] + 1.0, sharpe
    refused = [m for m in retuned.paths["EDGE"].markers if m.kind == "params_refusal"]
    assert all(m.text for m in refused)  # a refusal says which rules failed


def test_params_wait_for_the_training_delay(risk_run: tuple[Path, str, BacktestResult]) -> None:
    _, _, res = risk_run
    path = res.policy("stopped-retuned").paths["EDGE"]
    assert len(path.params_ids) == len(path.ts)
    released = {m.release_id: m for m in path.markers if m.kind == "params"}
    later = [m for m in released.values() if m.decided_ts is not None and m.ts > path.ts[0]]
    assert later, "nothing was released after the warm-up"
    for m in later:
        assert m.decided_ts is not None and m.ts - m.decided_ts >= DELAY_S * 1e9
    for c, pid in zip(path.ts, path.params_ids, strict=True):
        if pid:
            assert c >= released[pid].ts  # no trade uses params before their release time
    # the models swap on the same schedule as the policy without re-tuning
    assert path.release_ids == res.policy("stopped").paths["EDGE"].release_ids


def test_retunes_are_shared_between_policies(risk_run: tuple[Path, str, BacktestResult]) -> None:
    _, _, res = risk_run
    a, b = res.policy("stopped-retuned"), res.policy("stopped-retuned-again")
    n = a.params_releases + a.params_refusals + a.params_failures
    assert res.risk_cache_misses == n and res.risk_cache_hits == n
    assert a.paths["EDGE"].positions == b.paths["EDGE"].positions
    assert a.risk_compute_s == b.risk_compute_s  # shared ones counted in full for each


def test_neutral_params_trade_the_pipelines_formula(
        risk_run: tuple[Path, str, BacktestResult]) -> None:
    """End to end: a policy with neutral params earns position x next return - costs on the
    change of position, exactly, with positions of -1, 0 or 1."""
    _, _, res = risk_run
    path = res.policy("weekly").paths["EDGE"]
    close = _bars(1)["close"].to_numpy()
    fwd = close[1:] / close[:-1] - 1.0
    first = int(N_BARS * WARMUP)
    cost = (2.0 + 1.0) / 1e4  # the default fees and slippage
    prev = 0.0
    for k, (pos, r) in enumerate(zip(path.positions, path.returns, strict=True)):
        assert pos in (-1.0, 0.0, 1.0)
        assert r == pos * fwd[first + k] - cost * abs(pos - prev)
        prev = pos
    assert sum(p != 0 for p in path.positions) > 100


def test_book_with_neutral_params_is_the_old_formula_bit_for_bit() -> None:
    """The strategy simulator with neutral params, swapping models (and re-releasing neutral
    params) at random steps, equals `positions_from_proba` and the pipeline's return formula."""
    bars = _bars(5, n=900)
    market = MarketInputs.from_bars(bars, periods_per_year=8760.0)
    close = bars["close"].to_numpy()
    fwd = np.full(close.size, np.nan)
    fwd[:-1] = close[1:] / close[:-1] - 1.0
    rng = np.random.default_rng(3)
    start = 100
    book = Book(market, start, NEUTRAL, 3.0)
    swaps = sorted(int(x) for x in rng.choice(np.arange(start, close.size - 20), 8, replace=False))
    positions = None
    prev, j = 0.0, 0
    for i in range(start, close.size - 1):
        while j < len(swaps) and swaps[j] == i:
            p = rng.random(close.size)
            p[rng.random(close.size) < 0.1] = np.nan  # no signal: flat
            p[rng.random(close.size) < 0.05] = 0.5
            positions = positions_from_proba(np.where(np.arange(close.size) >= i, p, np.nan))
            book.set_model(i, p[i:])
            if j % 3 == 2:
                book.set_params(i, NEUTRAL)  # a params release: the position is carried
            j += 1
        pos = 0.0 if positions is None else float(positions[i])
        want = pos * fwd[i] - 3.0 / 1e4 * abs(pos - prev)
        assert book.pos[i] == pos and book.ret[i] == want
        assert np.float64(book.ret[i]).tobytes() == np.float64(want).tobytes()
        prev = pos


def test_a_params_swap_changes_nothing_before_it_and_carries_the_position() -> None:
    bars = _bars(6, n=600)
    market = MarketInputs.from_bars(bars, periods_per_year=8760.0)
    prob = np.random.default_rng(1).random(600)
    book = Book(market, 50, StrategyParams(stop_loss_atr=0.3, min_hold_bars=8), 3.0)
    book.set_model(50, prob[50:])
    pos, ret = book.pos.copy(), book.ret.copy()
    book.set_params(300, NEUTRAL)
    assert np.array_equal(book.pos[:300], pos[:300]) and np.array_equal(book.ret[:300], ret[:300])
    carried = pos[299]
    want = float(book.pos[300])
    c = market.close
    assert book.ret[300] == want * (c[301] / c[300] - 1.0) - 3.0 / 1e4 * abs(want - carried)


def test_no_look_ahead_changing_later_bars_changes_no_params_or_trade_before(
        risk_run: tuple[Path, str, BacktestResult]) -> None:
    tmp, _, _ = risk_run
    base = _bars(1)
    k = 2_300  # bars from k on are rewritten
    rng = np.random.default_rng(99)
    shock = np.concatenate((np.ones(k), np.exp(np.cumsum(rng.normal(0, 0.02, base.height - k)))))
    changed = base.with_columns(*(pl.col(c) * shock for c in ("open", "high", "low", "close")))
    policies = str(tmp / "stopped-retuned.toml")
    a = _run(tmp, {"EDGE": base}, policies)
    b = _run(tmp, {"EDGE": changed}, policies)
    t = int(base["ts"][k])  # the first changed bar opens at t; it is known at its close
    pa, pb = a.policies[0].paths["EDGE"], b.policies[0].paths["EDGE"]
    before = [i for i, c in enumerate(pa.ts) if c < t]
    assert len(before) > 500
    assert [pa.positions[i] for i in before] == [pb.positions[i] for i in before]
    assert [pa.params_ids[i] for i in before] == [pb.params_ids[i] for i in before]
    assert [pa.returns[i] for i in before[:-1]] == [pb.returns[i] for i in before[:-1]]
    assert [m for m in pa.markers if m.ts < t] == [m for m in pb.markers if m.ts < t]
    assert any(m.kind == "params" and m.ts < t for m in pa.markers)
    assert a.run_digest != b.run_digest


def test_same_inputs_give_the_same_digest_with_the_retunes_recomputed(
        risk_run: tuple[Path, str, BacktestResult]) -> None:
    tmp, policies, res = risk_run
    shutil.rmtree(tmp / "cache" / "risk")  # the re-tunes run again; the model fits are cached
    again = _run(tmp, {"EDGE": _bars(1)}, policies)
    assert again.risk_cache_misses == res.risk_cache_misses > 0
    assert again.run_digest == res.run_digest
    assert [p.metrics for p in again.policies] == [p.metrics for p in res.policies]


def test_the_report_and_table_show_params_releases_and_refusals(
        risk_run: tuple[Path, str, BacktestResult]) -> None:
    from rich.console import Console

    from autoopt.cli.backtest import metrics_table
    from autoopt.reports.backtest import backtest_report

    _, _, res = risk_run
    html = backtest_report(res)
    assert "params releases" in html and "stopped-retuned: params" in html
    out = Console(record=True, width=200)
    out.print(metrics_table(res))
    text = out.export_text()
    assert "params releases" in text and "re-tune compute s" in text
    doc = msgspec.json.decode(msgspec.json.encode(res))
    assert doc["policies"][2]["params_releases"] == res.policy("stopped-retuned").params_releases


def test_risk_presets_and_policy_files(tmp_path: Path) -> None:
    spec = preset("nightly+risk")
    assert spec.name == "nightly+risk" and spec.risk_retune == "with_retrain"
    assert spec.policy == preset("nightly").policy
    assert preset("nightly").risk_retune == "off" and "risk" not in preset("nightly").settings()
    good = tmp_path / "p.toml"
    good.write_text(WEEKLY + RETUNE + BAD)
    (p,) = parse_policies(str(good))
    assert p.risk_retune == "with_retrain" and p.risk["trials"] == 40
    assert p.initial_params() == StrategyParams(min_hold_bars=8, stop_loss_atr=0.3,
                                                take_profit_atr=0.4)
    for text, match in (('[risk]\nretune = "always"\n', "retune"),
                        ("[risk]\ntrials = 0\n", r"\[risk\]"),
                        ("[risk]\ntrails = 10\n", "trails"),
                        ("[risk.params]\nstop_loss_atr = -1\n", "stop_loss_atr"),
                        ("[risk.params]\nstop = 1\n", "stop")):
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=match) as err:
            parse_policies(str(bad))
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"\+risk"):
        parse_policies("never,monthly+risk")


def test_the_command_runs_a_risk_preset_and_shows_its_params(tmp_path: Path,
                                                              nats_server: str) -> None:
    import json

    from typer.testing import CliRunner

    from autoopt.cli import app

    csv = tmp_path / "EDGE.csv"
    _bars(2, n=2_000).with_columns(pl.from_epoch("ts", time_unit="ns")).write_csv(csv)
    cfg = tmp_path / "autoopt.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n[nats]\nurls = ["{nats_server}"]\n'
                   "[pipeline]\ntrials = 4\n[risk]\ntrials = 10\nouter_folds = 2\n")
    out = tmp_path / "bt.json"
    res = CliRunner().invoke(app, ["--config", str(cfg), "backtest", "--source", f"file:{csv}",
                                   "--symbols", "EDGE", "--policies", "never,never+risk",
                                   "--warmup", "50%", "--quiet", "--json", str(out)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "params releases" in text and "re-tune cache 0 hits, 1 misses" in text
    doc = json.loads(out.read_text())
    never, risk = doc["policies"]
    assert never["params_releases"] == never["params_refusals"] == 0
    assert risk["policy"] == "never+risk" and risk["settings"]["risk"]["retune"] == "with_retrain"
    assert risk["params_releases"] + risk["params_refusals"] + risk["params_failures"] == 1
    assert len(risk["paths"]["EDGE"]["params_ids"]) == len(risk["paths"]["EDGE"]["ts"])
