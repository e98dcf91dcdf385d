"""The demo's engine loop on a planted edge: release, a watcher swapping it in, a canary with
paper outcomes and its conclusion, a rollback.

Why a synthetic symbol: the bundled real bars have no edge the gate accepts (the demo shows those
refusals), so nothing would ever be released, tried live or rolled back there. ``EDGE`` is
seeded hourly bars (`autoopt.synthetic.planted_bars`) whose momentum edge flips to mean
reversion at bar `FLIP_AT`:

1. the nightly retrain on bars before the flip releases the first champion (direct: nothing to
   beat); an engine's running `ModelWatcher` swaps it in;
2. after the flip a retrain on the recent window, in ``release.mode = "canary"``, releases a
   challenger as a canary: a shadow experiment champion vs challenger starts by itself;
3. the engine (`autoopt.client.Engine`) publishes the live bars and its champion's signals; the
   paper trader fills both arms (no real order), the experiment supervisor judges the paper
   outcomes and concludes: promotion (registry ``current`` switched, the watcher swaps) or
   retirement, with the reason;
4. an operator rolls back to the first release (``autoopt releases rollback``): the watcher
   swaps back.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from rich.console import Console

from autoopt.config import Config, PolicyConfig

SYMBOL = "EDGE"
BARS = 2200
FLIP_AT = 1000
FIRST_CUT = 900  # the first nightly run sees bars before this (before the flip)
SECOND_CUT = 1600  # the second sees these, its window the last WINDOW of them (after the flip)
WINDOW = 600
PERSISTENCE = 0.8
TRIALS = 6  # per retrain here: the demo stays short (the gate counts every trial either way)
SEED = 18
"""The bars' seed. The post-flip challenger must beat the champion's recipe refitted on the same
recent folds, so after the flip it wins on its tuned parameters alone, which with a handful of
trials is not a given: with this seed it is released at 4, 5, 6 and 8 trials (seed 7, used
before, was refused at 6, `make demo`'s count, since the gate scores the champion's recipe)."""


def canary_config(config: Config) -> Config:
    """The demo config with canary releases, the A/B supervisor and the paper trader on."""
    raw = msgspec.to_builtins(config)
    raw["release"] = {"mode": "canary", "canary": {"shadow": True, "min_samples": 30}}
    raw["ab"] = {**raw.get("ab", {}), "enabled": True, "decide_interval_s": 0.5}
    raw["paper"] = {"enabled": True, "live_routes": True, "fees_bps": 1.0, "slippage_bps": 0.0}
    raw["pipeline"] = {**raw["pipeline"], "train_window_bars": WINDOW,
                       "trials": min(raw["pipeline"]["trials"], TRIALS)}
    quiet = msgspec.to_builtins(PolicyConfig(schedule=None))
    quiet["degradation"]["enabled"] = False
    quiet["drift"]["enabled"] = False
    raw["policy"] = quiet
    return msgspec.convert(raw, Config)


async def run_canary_loop(config: Config, log: Any, registry: Any, plugins: Any,
                          console: Console) -> dict[str, object]:
    """Steps 1-4 of the module doc; returns what happened, for tests."""
    from autoopt.client import Engine, ModelWatcher
    from autoopt.events import BarBatch, ExperimentConcluded, ModelRolledBack
    from autoopt.pipeline.ingest import ingest_bars
    from autoopt.pipeline.retrain import run_retrain
    from autoopt.service import Service
    from autoopt.subjects import subject_filter_for_type
    from autoopt.synthetic import planted_bars

    cfg = canary_config(config)
    bars = planted_bars(SEED, "hourly", PERSISTENCE, n=BARS, flip_at=FLIP_AT / BARS)
    cols = {c: bars[c].to_numpy() for c in bars.columns}
    out: dict[str, object] = {}
    swaps: list[str] = []
    watcher = ModelWatcher(SYMBOL, log=log, registry=registry, plugins=plugins,
                           on_swap=lambda new, old: swaps.append(new.release_id))
    await watcher.start()
    console.print(f"{SYMBOL}: seeded hourly bars, momentum edge (persistence {PERSISTENCE}) that "
                  f"flips to mean reversion at bar {FLIP_AT}; an engine's ModelWatcher follows it")

    await ingest_bars(log, SYMBOL, "1h", bars.head(FIRST_CUT), source="demo-edge")
    first = await run_retrain(cfg, source=f"log:{SYMBOL}", event_log=log, plugins=plugins,
                              registry=registry)
    r1 = first.results[0]
    if r1.release_id is None:
        console.print(f"[red]{SYMBOL}: the first retrain was refused ({'; '.join(r1.reasons)[:200]})"
                      "; the canary loop needs a champion[/red]")
        await watcher.close()
        return {"canary": "no champion"}
    await watcher.wait_for(r1.release_id, timeout=30)
    console.print(f"release {r1.release_id}: gate passed (sharpe {r1.score:.3f}), promoted "
                  f"directly (first release); the watcher swapped it in")

    await ingest_bars(log, SYMBOL, "1h", bars.slice(FIRST_CUT, SECOND_CUT - FIRST_CUT),
                      source="demo-edge")
    service = Service(cfg, log, plugins)
    served = asyncio.create_task(service.run(), name="canary-service")
    engine = Engine(log, spool_dir=f"{config.data_dir}/demo/spool", periods_per_year=24 * 365)
    try:
        second = await run_retrain(cfg, source=f"log:{SYMBOL}", event_log=log, plugins=plugins,
                                   registry=registry)
        r2 = second.results[0]
        if r2.release_id is None:
            console.print(f"{SYMBOL}: the post-flip challenger was refused: "
                          f"{'; '.join(r2.reasons)[:200]}")
            out["canary"] = "refused"
            return out
        exp = f"canary/{SYMBOL}/{r2.release_id}"
        console.print(f"challenger {r2.release_id}: gate passed; release.mode = canary: released "
                      f"as a challenger, experiment {exp} (shadow) started; current stays "
                      f"{registry.current(SYMBOL)}")
        async with asyncio.timeout(30):
            while not await _consuming(log, service):
                await asyncio.sleep(0.05)
        await engine.start()
        champion = watcher.current
        assert champion is not None
        p = champion.predict(bars)
        await engine.publish(BarBatch.from_arrays(symbol=SYMBOL, timeframe="1h", source="demo",
                                                  **{k: v[:SECOND_CUT] for k, v in cols.items()}))
        t0 = time.perf_counter()
        concluded: ExperimentConcluded | None = None
        for t in range(SECOND_CUT, BARS):
            await engine.publish(BarBatch.from_arrays(symbol=SYMBOL, timeframe="1h", source="demo",
                                                      **{k: v[t:t + 1] for k, v in cols.items()}))
            side = "long" if p[t] > 0.5 else "short"
            await engine.signal(SYMBOL, side, float(p[t]), ts_event=int(cols["ts"][t]),
                                release_id=champion.release_id, price=float(cols["close"][t]))
            if t % 50 == 0:
                await engine.flush()
                concluded = await _concluded(log, exp)
                if concluded is not None:
                    break
        await engine.flush()
        async with asyncio.timeout(60):
            while concluded is None:
                await asyncio.sleep(0.2)
                concluded = await _concluded(log, exp)
        st = concluded.statistics.get("variants", {})
        # each live bar gives each arm one paper trade: the champion's count is the bars it took
        out["bars_to_conclusion"] = int(st.get("champion", {}).get("n", 0))
        for v in ("champion", "challenger"):
            s = st.get(v, {})
            console.print(f"  {v:<10} paper trades {s.get('n', 0):>4}  mean return "
                          f"{s.get('mean', 0.0):+.5f}  cumulative {s.get('cum_return', 0.0):+.3f}")
        verdict = "promoted" if concluded.winner == "challenger" else "retired"
        console.print(f"canary concluded after {out['bars_to_conclusion']} live bars of paper "
                      f"outcomes ({time.perf_counter() - t0:.1f}s): challenger "
                      f"[bold]{verdict}[/bold] — "
                      f"{concluded.reason[:160]}")
        if verdict == "promoted":
            await watcher.wait_for(r2.release_id, timeout=30)
            console.print(f"registry current = {registry.current(SYMBOL)}; the watcher swapped "
                          f"in {r2.release_id}")
        out["canary"] = verdict
        out["paper_outcomes"] = service.paper.outcomes if service.paper else 0

        frm, to = registry.rollback(SYMBOL, r1.release_id)
        await log.append(ModelRolledBack.new(symbol=SYMBOL, release_id=to, from_release_id=frm,
                                             reason="demo: operator rollback"))
        await watcher.wait_for(r1.release_id, timeout=30)
        console.print(f"rollback {frm} -> {to} (autoopt releases rollback {SYMBOL} --to {to}): "
                      "the watcher swapped back")
        rolled = [e async for e in log.replay(subject_filter_for_type(ModelRolledBack, SYMBOL))]
        out["rollbacks"] = len(rolled)
        out["swaps"] = list(swaps)
        return out
    finally:
        service.stop.set()
        await asyncio.wait_for(served, 60)
        await engine.close()
        await watcher.close()


async def _consuming(log: Any, service: Any) -> bool:
    """The service's router and paper trader are consuming (live routes and bars are read)."""
    if service.router is None or not service.router.ready.is_set() or service.paper is None:
        return False
    try:
        await log.js.consumer_info("MARKET", f"{service.config.paper.durable}-bars")
        await log.js.consumer_info("SIGNALS", f"{service.config.paper.durable}-routes")
    except Exception:
        return False
    return True


async def _concluded(log: Any, name: str) -> Any:
    from autoopt.events import ExperimentConcluded
    from autoopt.subjects import subject_filter_for_type

    async for ev in log.replay(subject_filter_for_type(ExperimentConcluded, name)):
        if isinstance(ev, ExperimentConcluded):
            return ev
    return None



__all__ = ["canary_config", "run_canary_loop"]
