"""Canary release end to end on a real nats-server, service and models: a champion without an
edge serves; a challenger with the planted edge passes (a hand-written passing verdict) in
``release.mode = "canary"``, so it is released as a challenger and a shadow experiment starts by
itself; the engine publishes bars and the champion's signals; the paper trader fills both arms
(no real order, no outcome from the engine), the supervisor concludes, the promotion switches the
registry's current and a running watcher swaps to the challenger."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import numpy as np
import pytest

from autoopt.ab.experiments import ExperimentBook
from autoopt.client import Engine, ModelWatcher
from autoopt.clock import SystemClock
from autoopt.config import Config, load_config
from autoopt.events import (
    BarBatch,
    CanaryStarted,
    ExperimentConcluded,
    ModelPromoted,
    TradeOutcome,
    ValidationVerdict,
)
from autoopt.log import EventLog
from autoopt.paper.book import PaperBook
from autoopt.pipeline.dataset import build_dataset
from autoopt.pipeline.recipe import recipe_fields
from autoopt.pipeline.release import ReleaseHistory, ReleaseSteps, canary_name
from autoopt.plugins import load_plugins
from autoopt.promotion import promote
from autoopt.registry import ModelRegistry
from autoopt.service.app import Service
from autoopt.synthetic import planted_bars
from autoopt.testing.releases import release_model, tiny_release

SYMBOL = "EDGE"


def _config(tmp_path: Path, url: str) -> Config:
    path = tmp_path / "autoopt.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[nats]\nurls = ["{url}"]\n'
        "[service]\nhttp_port = 0\ntick_interval_s = 0\n"
        "[ab]\nenabled = true\ndecide_interval_s = 0.2\n"
        "[paper]\nenabled = true\nlive_routes = true\nfees_bps = 0.0\nslippage_bps = 0.0\n"
        '[release]\nmode = "canary"\n[release.canary]\nshadow = true\nmin_samples = 30\n'
    )
    return load_config(path, environ={})


def test_paper_book_fills_next_open_to_close_with_costs() -> None:
    book = PaperBook(fees_bps=10.0, slippage_bps=5.0, hold_bars=2)
    assert book.add_route("r1", symbol="X", signal_id="s", experiment="e", variant="v",
                          release_id="rel", side="short", qty=2.0, signal_ts=10)
    assert not book.add_route("r2", symbol="X", signal_id="s", experiment="e", variant="v",
                              release_id="rel", side="flat", qty=1.0, signal_ts=10)
    ts = np.array([10, 20, 30])
    book.add_bars("X", ts[:2], np.array([99.0, 100.0]), ts[:2] * 0.0 + 101, ts[:2] * 0.0 + 98,
                  np.array([99.5, 104.0]), ts[:2] * 0.0 + 1)
    assert book.advance("X") == []  # holds two bars: the exit bar has not arrived
    book.add_bars("X", ts[2:], np.array([104.0]), np.array([105.0]), np.array([90.0]),
                  np.array([95.0]), np.array([1.0]))
    (trade,) = book.advance("X")
    entry, exit_ = 100.0 * (1 - 5e-4), 95.0 * (1 + 5e-4)
    assert (trade.entry_ts, trade.exit_ts, trade.entry_price, trade.exit_price) == (
        20, 30, entry, exit_)
    assert trade.net_return == pytest.approx(-(exit_ / entry - 1) - 2e-3)
    assert trade.pnl == pytest.approx(trade.net_return * entry * 2.0)


async def test_split_canary_and_a_first_release(event_log: EventLog, tmp_path: Path) -> None:
    """Split canaries get the configured weights and are not shadow; with no champion yet a
    canary-mode release is promoted directly (nothing to compare it with)."""
    registry = ModelRegistry(tmp_path)
    canary = msgspec.convert({"shadow": False, "challenger_weight": 0.2, "min_samples": 50},
                             type=Config().release.canary.__class__)
    steps = ReleaseSteps(event_log, registry, SystemClock(), "run-split", canary)
    first = await tiny_release(registry, event_log, "SPLIT", 1, record=False)
    v1 = ValidationVerdict.new(symbol="SPLIT", challenger=first, passed=True, reasons=["ok"])
    await event_log.append(v1)
    await steps.complete(v1, ReleaseHistory(), None)
    assert registry.current("SPLIT") == first
    second = await tiny_release(registry, event_log, "SPLIT", 2, record=False)
    v2 = ValidationVerdict.new(symbol="SPLIT", challenger=second, passed=True, champion=first)
    await event_log.append(v2)
    await steps.complete(v2, ReleaseHistory(), None)
    await steps.complete(v2, ReleaseHistory(), None)  # a rerun (redelivered job) changes nothing
    exp = (await ExperimentBook.rebuild(event_log)).get(canary_name("SPLIT", second))
    assert (exp.status, exp.shadow, exp.weights) == (
        "running", False, {"champion": 0.8, "challenger": 0.2})
    assert registry.current("SPLIT") == first
    models = [e async for e in event_log.replay("MODELS")]
    assert [type(e).__name__ for e in models].count("CanaryStarted") == 1


async def _wait(predicate, timeout: float = 90.0, what: str = "") -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.1)


async def test_shadow_canary_concludes_from_paper_outcomes_alone(
        event_log: EventLog, nats_server: str, tmp_path: Path) -> None:
    config = _config(tmp_path, nats_server)
    registry = ModelRegistry(config.data_dir)
    plugins = load_plugins()
    fs = plugins.component("feature_set", "default")
    recipe = recipe_fields(config.pipeline.label, fs)
    bars = planted_bars(5, "hourly", 0.75, n=1500)
    ds = build_dataset(SYMBOL, bars[:700], fs, config.pipeline.label)
    noise = np.random.default_rng(0).integers(0, 2, ds.y.size).astype(np.int8)
    champ = await release_model(registry, event_log, SYMBOL, ds.X, noise, ds.feature_names,
                                seed=1, recipe=recipe)
    await promote(event_log, registry, ModelPromoted.new(symbol=SYMBOL,
                                                         release_id=champ.release_id))
    chal = await release_model(registry, event_log, SYMBOL, ds.X, ds.y, ds.feature_names,
                               seed=2, recipe=recipe, record=False)
    verdict = ValidationVerdict.new(symbol=SYMBOL, challenger=chal.release_id, passed=True,
                                    champion=champ.release_id, reasons=["test: passed"])
    await event_log.append(verdict)
    steps = ReleaseSteps(event_log, registry, SystemClock(), "run-canary",
                         config.release.canary)
    await steps.complete(verdict, ReleaseHistory(), None)
    assert registry.current(SYMBOL) == champ.release_id  # a canary does not switch current
    name = canary_name(SYMBOL, chal.release_id)
    book = await ExperimentBook.rebuild(event_log)
    assert book.get(name).status == "running" and book.get(name).shadow

    service = Service(config, event_log, plugins)
    served = asyncio.create_task(service.run())
    watcher = ModelWatcher(SYMBOL, log=event_log, registry=registry, plugins=plugins)
    engine = Engine(event_log, spool_dir=tmp_path / "spool")
    try:
        await watcher.start()
        assert watcher.current is not None and watcher.current.release_id == champ.release_id

        async def consuming() -> bool:
            try:
                await event_log.js.consumer_info("MARKET", "paper-trader-bars")
                await event_log.js.consumer_info("SIGNALS", "paper-trader-routes")
            except Exception:
                return False
            return service.router is not None and service.router.ready.is_set()

        await _wait(consuming, what="service consuming")
        await engine.start()
        sides = watcher.current.predict(bars)  # the engine trades its champion's decisions
        a = {k: bars[k].to_numpy() for k in bars.columns}
        await engine.publish(BarBatch.from_arrays(symbol=SYMBOL, timeframe="1h",
                                                  **{k: v[:700] for k, v in a.items()}))
        for t in range(700, bars.height):
            await engine.publish(BarBatch.from_arrays(symbol=SYMBOL, timeframe="1h",
                                                      **{k: v[t:t + 1] for k, v in a.items()}))
            await engine.signal(SYMBOL, "long" if sides[t] > 0.5 else "short", float(sides[t]),
                                ts_event=int(a["ts"][t]), release_id=champ.release_id)
        await engine.flush()

        async def concluded() -> bool:
            return any([isinstance(e, ExperimentConcluded)
                        async for e in event_log.replay("EXPERIMENTS")])

        await _wait(concluded, what="experiment concluded")
        (end,) = [e async for e in event_log.replay("EXPERIMENTS")
                  if isinstance(e, ExperimentConcluded)]
        assert end.winner == "challenger", end.reason
        stats = end.statistics["variants"]
        assert stats["challenger"]["mean"] > stats["champion"]["mean"]
        challenger = await watcher.model(chal.release_id)  # what a split route trades with
        assert challenger.features is not None and challenger.release_id == chal.release_id
        await watcher.wait_for(chal.release_id, timeout=30)  # every watcher swaps
        assert registry.current(SYMBOL) == chal.release_id
        models = [e async for e in event_log.replay("MODELS")]
        assert [e.release_id for e in models if isinstance(e, ModelPromoted)] == [
            champ.release_id, chal.release_id]
        assert [e.experiment for e in models if isinstance(e, CanaryStarted)] == [name]
        outcomes = [e async for e in event_log.replay("TRADES")]
        assert outcomes and all([isinstance(e, TradeOutcome) and e.trade_id.startswith("paper-")
                                 for e in outcomes])  # paper outcomes alone
    finally:
        service.stop.set()
        await asyncio.wait_for(served, 30)
        await engine.close()
        await watcher.close()


_ = msgspec  # config structs are built from TOML here
