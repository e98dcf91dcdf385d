"""The demo job: autoopt end to end on the embedded server and real bundled bars.

1. Real hourly EURUSD and daily GOOG bars (shipped in the ``backtesting`` package); the first 70%
   is history, ingested into the log as bar events.
2. The nightly pipeline retrains on that history: features, labels, Optuna + LightGBM under
   purged walk-forward CV, the gate (margin, Deflated Sharpe, minimum trades), release or refusal.
3. `autoopt serve` runs in this process; the remaining 30% is replayed as a live feed: bars,
   the trading engine's signals (the released champion's, loaded through `ModelWatcher`; a
   moving-average rule only where no model passed the gate, and a release the watcher cannot
   load stops the demo), their trade outcomes, rolling performance metrics and
   feature batches. The decision core watches them; a degradation or drift trigger fires and the
   service retrains on everything the log holds by then, gated again.
4. The log is replayed through the decision core twice: the digests are equal.
4b. The engine loop on ``EDGE``, seeded bars with a planted edge that flips
   (`autoopt.demo_canary`): a release a running watcher swaps in, a canary experiment judged on
   paper outcomes and its conclusion, a rollback.
5. A short policy backtest (`autoopt backtest`): never, weekly and degradation-triggered
   retraining on ``FLIP``, seeded synthetic hourly bars whose edge flips sign two thirds of the
   way through (`autoopt.synthetic.planted_bars`; the bundled real bars have no edge the gate
   accepts, as step 2 shows, so every policy would stay flat there), with `BACKTEST_TRIALS`
   trials per retrain on a rolling window (seconds on two cores): ``never`` loses after the
   flip, a triggered policy adapts, and the significance tests say whether the difference is
   real. Written as an HTML report in the data dir and recorded as one ``system.backtest``
   event.

Everything is real: nats-server, LightGBM, Optuna, files. Only the demo's own policy knobs
(metric window sizes) are set for a feed of a few thousand bars; they are printed.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import msgspec
import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from autoopt.config import Config, PolicyConfig
from autoopt.errors import ArtifactError
from autoopt.events import (
    BarBatch,
    DecisionMade,
    Event,
    FeatureBatch,
    MetricsReported,
    SignalEmitted,
    TradeOutcome,
    ValidationVerdict,
)
from autoopt.runtime import open_event_log, open_plugins

HISTORY_FRACTION = 0.7
CHUNK = 100  # live bars per append batch, and per metrics window
COST = 1e-4  # 1 bp per unit of turnover, charged on the outcome
BACKTEST_POLICIES = "never,weekly,degradation"
BACKTEST_BARS = 3000  # hourly: about four months; the cost grows with the weeks it covers
BACKTEST_TRIALS = 4
BACKTEST_WINDOW = 800  # train on the last 800 bars: a retrain after the flip learns the new regime
BACKTEST_SEED = 0


def demo_config(config: Config) -> Config:
    """The user's config with the demo's policy knobs for a short live feed."""
    policy = config.policy
    degradation = msgspec.structs.replace(policy.degradation, window=3, source_window="demo")
    drift = msgspec.structs.replace(policy.drift, min_rows=CHUNK * 2)
    policy = msgspec.structs.replace(policy, schedule=None, degradation=degradation, drift=drift)
    service = msgspec.structs.replace(config.service, http_port=0)
    return msgspec.structs.replace(config, policy=policy, service=service)


def _signals_from_rule(close: np.ndarray) -> np.ndarray:
    """P(up) of a 10/30 moving-average rule: what a simple engine trades without a model."""
    s = pl.Series(close)
    fast, slow = s.rolling_mean(10).to_numpy(), s.rolling_mean(30).to_numpy()
    return np.where(np.isnan(slow), 0.5, np.where(fast > slow, 0.6, 0.4))


def _window_metrics(p: np.ndarray, fwd: np.ndarray, ppy: float) -> dict[str, float]:
    """Live performance of one window of signals: hit rate, precision of longs, Sharpe."""
    side = np.where(p > 0.5, 1.0, -1.0)
    pnl = side * fwd - COST * np.abs(np.diff(side, prepend=side[0]))
    up = fwd > 0
    longs = side > 0
    sd = pnl.std(ddof=1)
    return {
        "accuracy": float(np.mean((side > 0) == up)),
        "precision": float(np.mean(up[longs])) if longs.any() else 0.0,
        "sharpe": float(pnl.mean() / sd * math.sqrt(ppy)) if sd > 0 else 0.0,
    }


def _live_events(
    symbol: str,
    bars: pl.DataFrame,
    start: int,
    proba: np.ndarray,
    features: pl.DataFrame | None,
    feature_set: str,
    release_id: str | None,
    ppy: float,
) -> list[list[Event]]:
    """The live feed of one symbol from row ``start``, in chunks of `CHUNK` bars."""
    from autoopt.pipeline.dataset import timeframe_label

    ts = bars["ts"].to_numpy()
    close = bars["close"].to_numpy()
    timeframe = timeframe_label(ts)
    chunks: list[list[Event]] = []
    for lo in range(start, bars.height - 1, CHUNK):
        hi = min(lo + CHUNK, bars.height - 1)
        part = bars.slice(lo, hi - lo)
        out: list[Event] = [
            BarBatch.from_arrays(symbol=symbol, timeframe=timeframe, source="demo-feed",
                                 **{c: part[c].to_numpy() for c in ("ts", "open", "high", "low", "close", "volume")})
        ]
        for t in range(lo, hi):
            side = "long" if proba[t] > 0.5 else "short"
            sig = SignalEmitted.new(
                symbol=symbol, signal_id=f"{symbol}-{ts[t]}", side=side, confidence=float(proba[t]),
                release_id=release_id, price=float(close[t]), ts_event=int(ts[t]),
            )
            ret = (close[t + 1] / close[t] - 1.0) * (1 if side == "long" else -1) - COST
            out.append(sig)
            out.append(TradeOutcome.new(
                symbol=symbol, trade_id=f"{symbol}-{ts[t]}", side=side, qty=1.0,
                entry_price=float(close[t]), exit_price=float(close[t + 1]), fees=COST * float(close[t]),
                pnl=float(ret * close[t]), return_=float(ret), signal_id=sig.signal_id,
                release_id=release_id, entry_ts=int(ts[t]), exit_ts=int(ts[t + 1]), ts_event=int(ts[t + 1]),
            ))
        fwd = close[lo + 1 : hi + 1] / close[lo:hi] - 1.0
        out.append(MetricsReported.new(
            symbol=symbol, window="demo", metrics=_window_metrics(proba[lo:hi], fwd, ppy),
            window_start=int(ts[lo]), window_end=int(ts[hi - 1]), release_id=release_id, ts_event=int(ts[hi - 1]),
        ))
        if features is not None:
            rows = features.slice(lo, hi - lo)
            out.append(FeatureBatch.from_arrays(
                symbol=symbol, feature_set=feature_set, ts=ts[lo:hi],
                columns={c: rows[c].to_numpy() for c in rows.columns},
            ))
        chunks.append(out)
    return chunks


async def run_demo(config: Config, *, source: str, console: Console) -> dict[str, object]:
    """Run the demo (see the module doc); returns a summary for tests and scripts."""
    from autoopt.cli.retrain import _table
    from autoopt.client import ModelWatcher
    from autoopt.config import to_toml
    from autoopt.core import replay_decisions, verify_recorded
    from autoopt.pipeline.dataset import periods_per_year, timeframe_label
    from autoopt.pipeline.ingest import ingest_bars
    from autoopt.pipeline.retrain import run_retrain
    from autoopt.registry import ModelRegistry
    from autoopt.service import CORE_STREAM, Service

    config = demo_config(config)
    plugins = open_plugins(config)
    table = Table(title="plugins (entry-point group 'autoopt')")
    for col in ("plugin", "version", "hooks"):
        table.add_column(col)
    for info in plugins.info():
        table.add_row(info.name, info.version, ", ".join(h.removeprefix("autoopt_") for h in info.hooks))
    console.print(table)
    for failure in plugins.failures:
        console.print(f"[red]plugin {failure.name} failed to load: {failure.error}[/red]")

    summary: dict[str, object] = {}
    log = await open_event_log(config)
    registry = ModelRegistry(config.data_dir)
    try:
        console.print(f"event log: {log.url} (data dir {config.data_dir})")
        bars = plugins.data_source_for(source).load(source)
        symbols = list(bars)
        cut = {s: int(df.height * HISTORY_FRACTION) for s, df in bars.items()}

        console.rule("[bold]1. history → event log")
        for s, df in bars.items():
            hist = df.head(cut[s])
            n = await ingest_bars(log, s, timeframe_label(hist["ts"].to_numpy()), hist, source=source)
            console.print(f"{s}: {n} new bars ingested ({cut[s]} of {df.height} are history)")

        console.rule("[bold]2. nightly retrain on the history")
        t0 = time.perf_counter()
        nightly = await run_retrain(config, source="log:" + ",".join(symbols), event_log=log,
                                    plugins=plugins, registry=registry)
        console.print(_table(nightly))
        console.print(f"retrain took {time.perf_counter() - t0:.1f}s")
        out_dir = Path(config.data_dir) / "demo"
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "retrain-summary.json").write_bytes(msgspec.json.format(msgspec.json.encode(nightly)))
        summary["nightly"] = msgspec.to_builtins(nightly)

        console.rule("[bold]3. autoopt serve + live feed")
        service = Service(config, log, plugins)
        service_task = asyncio.create_task(service.run(), name="service")
        feature_set = plugins.component("feature_set", config.pipeline.feature_set)
        for s, df in bars.items():
            watcher = ModelWatcher(s, log=log, registry=registry, plugins=plugins)
            champion = await watcher.start()
            released = [r.release_id for r in nightly.results if r.symbol == s and r.deployed]
            if released and champion is None:  # a release the engine cannot load is a failure
                await watcher.close()
                raise ArtifactError(f"{s}: the watcher could not load release {released[-1]}: "
                                    + "; ".join(str(e) for _, e in watcher.errors))
            feats = feature_set.compute(df)
            if champion is not None:
                X = feats.select(champion.feature_names).to_numpy()
                proba = np.nan_to_num(champion.predict_proba(X), nan=0.5)
                who = f"champion {champion.release_id}"
            else:
                proba = _signals_from_rule(df["close"].to_numpy())
                who = "moving-average rule (no model passed the gate)"
            await watcher.close()
            ppy = periods_per_year(df["ts"].to_numpy())
            chunks = _live_events(s, df, cut[s], proba, feats, feature_set.name,
                                  champion.release_id if champion else None, ppy)
            n_events = 0
            for chunk in chunks:
                await log.append_many(chunk)
                n_events += len(chunk)
            console.print(f"{s}: {df.height - cut[s]} live bars → {n_events} events; signals from {who}")

        decided, verdicts = await _await_outcome(log, service, symbols, timeout_s=600.0)
        for d in decided:
            console.print(f"[bold yellow]trigger[/bold yellow] {d.symbol}: {d.reason} {_short(d.details)}")
        for v in verdicts:
            mark = "[green]released[/green]" if v.passed else "[red]refused[/red]"
            console.print(f"gate for {v.symbol} {v.challenger}: {mark} {'; '.join(v.reasons)[:200]}")
        for failed in service.jobs.gave_up if service.jobs else []:
            console.print(f"[red]retrain job {failed} failed; its error is in the dead-letter stream[/red]")
        service.stop.set()
        await service_task
        summary["triggers"] = [d.reason for d in decided]
        summary["verdicts"] = [bool(v.passed) for v in verdicts]

        console.rule("[bold]4. replay --decisions")
        digests = []
        for _ in range(2):
            items = [(r.event, r.time_ns) async for r in log.replay_records(CORE_STREAM)]
            result = replay_decisions(items, config)
            digests.append(result.digest)
        recorded = [e async for e in log.replay("DECISIONS")]
        matched = verify_recorded(recorded, result)
        console.print(f"{result.n_events} events replayed; retrains {len(result.retrains())}; digest {digests[0]}")
        console.print("same digest twice: " + ("[green]yes[/green]" if digests[0] == digests[1] else "[red]NO[/red]"))
        console.print(f"the {matched} decisions the service recorded equal the replayed ones")
        config_file = out_dir / "autoopt.toml"
        config_file.write_text(to_toml(config))
        console.print(
            f"replay it yourself: AUTOOPT_DATA_DIR={config.data_dir} autoopt --config {config_file} replay --decisions"
        )
        summary["digests"] = digests
        summary["config_file"] = str(config_file)
        summary["nats_url"] = log.url

        console.rule("[bold]4b. the engine loop on a planted edge: release, canary, rollback")
        from autoopt.demo_canary import run_canary_loop

        summary["canary"] = await run_canary_loop(config, log, registry, plugins, console)

        console.rule("[bold]5. autoopt backtest: does retraining pay?")
        summary.update(await _short_backtest(config, bars, log, source, out_dir, console))
    finally:
        await log.close()
    return summary


async def _short_backtest(config: Config, bars: dict[str, pl.DataFrame], log, source: str,  # noqa: ANN001
                          out_dir: Path, console: Console) -> dict[str, object]:
    """Step 5: `BACKTEST_POLICIES` on the seeded ``FLIP`` bars (see the module docstring),
    written as a CSV beside the report so the printed command reruns it exactly."""
    from autoopt.backtest.policies import parse_policies
    from autoopt.cli.backtest import backtest_and_record
    from autoopt.synthetic import planted_bars

    del bars, source
    frame = planted_bars(BACKTEST_SEED, "hourly", 0.7, n=BACKTEST_BARS, flip_at=2 / 3)
    csv = out_dir / "FLIP.csv"
    frame.with_columns(pl.from_epoch("ts", time_unit="ns")).write_csv(csv)
    # the default policy thresholds (the demo's live-feed knobs are sized for step 3's feed)
    bt_config = msgspec.structs.replace(config, policy=PolicyConfig(),
                                        pipeline=msgspec.structs.replace(
                                            config.pipeline, train_window_bars=BACKTEST_WINDOW))
    specs = parse_policies(BACKTEST_POLICIES, bt_config.policy)
    report = out_dir / "backtest.html"
    console.print(f"FLIP (synthetic, edge flips at bar {2 * BACKTEST_BARS // 3}): policies "
                  f"{BACKTEST_POLICIES} on {frame.height} hourly bars, {BACKTEST_TRIALS} trials "
                  f"per retrain on the last {BACKTEST_WINDOW} bars")
    result, event = await backtest_and_record(
        bt_config, {"FLIP": frame}, specs, log, source=f"file:{csv}", out=console,
        trials=BACKTEST_TRIALS, report_path=report, json_path=out_dir / "backtest.json")
    console.print(f"backtest report: {report}", soft_wrap=True)
    console.print(f"run it yourself: AUTOOPT_DATA_DIR={config.data_dir} "
                  f"AUTOOPT_PIPELINE__TRAIN_WINDOW_BARS={BACKTEST_WINDOW} autoopt --config "
                  f"{out_dir / 'autoopt.toml'} backtest --source file:{csv} --symbols FLIP "
                  f"--policies {BACKTEST_POLICIES} --trials {BACKTEST_TRIALS} "
                  "--report backtest.html", soft_wrap=True)
    return {"backtest_report": str(report), "backtest_digest": result.run_digest,
            "backtest_event": event.event_id}


def _short(details: dict[str, object]) -> str:
    text = msgspec.json.encode(msgspec.to_builtins(details, enc_hook=str)).decode()
    return text if len(text) < 160 else text[:157] + "..."


async def _await_outcome(log, service, symbols: list[str], timeout_s: float):  # noqa: ANN001
    """Wait until the service has decided the whole feed and finished the retrains it started."""
    from autoopt.subjects import subject_filter_for_type

    deadline = time.monotonic() + timeout_s
    decided: list[DecisionMade] = []
    verdicts: list[ValidationVerdict] = []
    start_verdicts = {s: len([e async for e in log.replay(subject_filter_for_type(ValidationVerdict, s))]) for s in symbols}
    settled = -1
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        decider = service.decider
        if decider is None or decider.lag > 0 or decider.seq != settled:
            # sourcing into CORE is asynchronous: wait for two quiet polls in a row
            settled = decider.seq if decider is not None and decider.lag == 0 else -1
            continue
        decided = [
            e async for e in log.replay(subject_filter_for_type(DecisionMade))
            if isinstance(e, DecisionMade) and e.kind == "retrain"
        ]
        verdicts = []
        for s in symbols:
            found = [e async for e in log.replay(subject_filter_for_type(ValidationVerdict, s))]
            verdicts.extend(found[start_verdicts[s]:])
        jobs = service.jobs
        if jobs is None or jobs.in_flight:
            continue
        failed = [d for d in decided if d.event_id in jobs.gave_up]
        expected = (len(decided) - len(failed)) * len(service.config.pipeline.models)
        if len(verdicts) >= expected:
            break
    return decided, verdicts
