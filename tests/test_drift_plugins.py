"""Plugin drift detectors (issue 15 item 6): a third-party streaming detector, registered through
a real pluggy plugin object, is named in ``policy.drift.detectors`` with its own params, fires a
drift retrain in a running service (real nats-server, real LightGBM retrain), and the log
replays to the same decisions and state with it; its state rides the checkpoint through the
factory's ``to_bytes`` / ``from_bytes``; without the plugin, config load and replay fail in one
line naming it. The built-ins (ADWIN, Page-Hinkley) register through the same hook."""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from autoopt.config import Config, DriftPolicy, PolicyConfig, SymbolPolicy, load_config
from autoopt.core import State, decide, encode_commands, replay_decisions, verify_recorded
from autoopt.core.detectors import from_plugins
from autoopt.errors import ConfigError
from autoopt.events import (
    DecisionMade,
    Event,
    ModelPromoted,
    ModelReleased,
    SignalEmitted,
    TrainingFinished,
)
from autoopt.log import EventLog
from autoopt.pipeline.retrain import load_bars
from autoopt.plugins import Plugins, hookimpl, load_plugins
from autoopt.service import Service
from autoopt.service.checkpoint import Checkpoints
from autoopt.service.core_stream import CORE_STREAM
from autoopt.subjects import subject_filter_for_type

# --------------------------------------------------------------------- the third-party detector


class MeanShift:
    """Fires when ``patience`` values in a row lie more than ``threshold`` away from the mean of
    the first ``warmup`` values (a deliberately simple detector with a state to checkpoint)."""

    _FORMAT = "<4sIdIIdI"
    _MAGIC = b"MSD1"

    def __init__(self, warmup: int = 20, threshold: float = 0.25, patience: int = 5) -> None:
        if warmup < 1 or patience < 1 or threshold <= 0:
            raise ValueError(f"warmup and patience must be >= 1 and threshold > 0, got "
                             f"{warmup}, {patience}, {threshold}")
        self.warmup, self.threshold, self.patience = warmup, threshold, patience
        self.n, self.total, self.run = 0, 0.0, 0

    def update(self, x: float) -> bool:
        if self.n < self.warmup:
            self.n += 1
            self.total += x
            return False
        self.n += 1
        far = abs(x - self.total / self.warmup) > self.threshold
        self.run = self.run + 1 if far else 0
        return self.run >= self.patience

    def to_bytes(self) -> bytes:
        return struct.pack(self._FORMAT, self._MAGIC, self.warmup, self.threshold, self.patience,
                           self.n, self.total, self.run)

    @classmethod
    def from_bytes(cls, data: bytes) -> MeanShift:
        magic, warmup, threshold, patience, n, total, run = struct.unpack(cls._FORMAT, data)
        if magic != cls._MAGIC:
            raise ValueError("not a MeanShift state")
        det = cls(warmup, threshold, patience)
        det.n, det.total, det.run = n, total, run
        return det


class MeanShiftFactory:
    name = "mean_shift"

    def create(self, **params: Any) -> MeanShift:
        return MeanShift(**params)

    def from_bytes(self, data: bytes) -> MeanShift:
        return MeanShift.from_bytes(data)


class MeanShiftPlugin:
    @hookimpl
    def autoopt_register_drift_detectors(self) -> list[object]:
        return [MeanShiftFactory()]


def plugins_with_detector() -> Plugins:
    plugins = load_plugins(entry_points=False)
    plugins.register(MeanShiftPlugin(), "mean-shift", version="0.1", source="tests")
    return plugins


PARAMS = {"mean_shift": {"warmup": 20, "threshold": 0.25, "patience": 5}}


def policy(**drift: Any) -> PolicyConfig:
    fields = {"detectors": ["mean_shift"], "streams": ["prediction"], "params": PARAMS, **drift}
    return PolicyConfig(schedule=None, cooldown_s=0.0, drift=DriftPolicy(**fields))


def signals(confidences: list[float], symbol: str = "GOOG", t0: int = 10**18) -> list[SignalEmitted]:
    return [
        SignalEmitted(event_id=f"sig-{t0}-{i}", ts_event=t0 + i * 10**9, ts_init=t0 + i * 10**9,
                      symbol=symbol, signal_id=f"s{i}", side="long", confidence=c)
        for i, c in enumerate(confidences)
    ]


CALM_THEN_SHIFT = [0.5 + 0.01 * (i % 3) for i in range(30)] + [0.9] * 5 + [0.5] * 8

# ------------------------------------------------------------------------------- the pure core


def test_builtin_detectors_register_through_the_hook() -> None:
    plugins = plugins_with_detector()
    assert set(plugins.components("drift_detector")) == {"adwin", "page_hinkley", "mean_shift"}
    owners = {p.name: p.components for p in plugins.info()}
    assert owners["builtin-drift"] == ("drift_detector adwin", "drift_detector page_hinkley")
    assert owners["mean-shift"] == ("drift_detector mean_shift",)
    cfg = PolicyConfig(drift=DriftPolicy(detectors=["adwin"], params={"adwin": {"delta": 0.01}}))
    assert from_plugins(plugins, cfg).names() == ["adwin"]


def test_plugin_detector_fires_in_the_core_and_its_state_survives_a_checkpoint() -> None:
    detectors = from_plugins(plugins_with_detector(), policy())
    events = signals(CALM_THEN_SHIFT)
    whole = State()
    outs = [decide(whole, e, e.ts_event, policy(), detectors=detectors)[1] for e in events]
    retrains = [(i, c) for i, out in enumerate(outs) for c in out if c.kind == "retrain"]
    assert [(i, c.reason, c.details["detector"]) for i, c in retrains] == [
        (34, "drift.mean_shift", "mean_shift")]
    # the same run, checkpointed (msgpack bytes) and restored before every event
    stepped, restored_outs = State(), []
    for e in events:
        state = State.from_bytes(stepped.to_bytes())
        stepped, out = decide(state, e, e.ts_event, policy(), detectors=detectors)
        restored_outs.append(out)
    assert [encode_commands(o) for o in restored_outs] == [encode_commands(o) for o in outs]
    assert stepped.digest() == whole.digest()
    raw = State.from_bytes(whole.to_bytes()).data.symbols["GOOG"].detectors["mean_shift.prediction"]
    assert MeanShiftFactory().from_bytes(raw).to_bytes() == raw
    assert MeanShift.from_bytes(raw).n == 8  # restarted after the detection, 8 values since


def test_unknown_or_misconfigured_detector_is_one_config_line() -> None:
    plugins = plugins_with_detector()
    with pytest.raises(ConfigError) as err:
        from_plugins(plugins, policy(detectors=["psi", "mean_shfit"], params={}))
    msg = str(err.value)
    assert "\n" not in msg and "'policy.drift.detectors[1]'" in msg and "'mean_shfit'" in msg
    assert "known: adwin, ks, mean_shift, page_hinkley, psi" in msg
    assert "did you mean 'mean_shift'?" in msg
    with pytest.raises(ConfigError, match=r"policy\.drift\.params\.mean_shift.*rejects.*ValueError"):
        from_plugins(plugins, policy(params={"mean_shift": {"warmup": 0}}))
    with pytest.raises(ConfigError, match=r"policy\.drift\.params\.mean_shift.*unexpected keyword"):
        from_plugins(plugins, policy(params={"mean_shift": {"window": 3}}))
    with pytest.raises(ConfigError, match=r"params\.nope': unknown drift detector 'nope'"):
        from_plugins(plugins, policy(params={"nope": {}}))
    per_symbol = msgspec.structs.replace(policy(), symbols={
        "BTC": SymbolPolicy(drift=DriftPolicy(detectors=["adwin", "mean_shfit"]))})
    with pytest.raises(ConfigError, match=r"'policy\.symbols\.BTC\.drift\.detectors\[1\]'"):
        from_plugins(plugins, per_symbol)
    # the pure core without the plugin's factories refuses the config instead of dropping it
    (event,) = signals([0.5])
    with pytest.raises(ConfigError, match="unknown drift detector 'mean_shift'"):
        decide(State(), event, event.ts_event, policy())
    with pytest.raises(ConfigError, match="unknown drift detector 'mean_shift'"):
        replay_decisions([event], policy())


def test_the_example_packages_detector_fires_and_checkpoints() -> None:
    example = Path(__file__).parent.parent / "examples" / "autoopt-example-plugin"
    sys.path.insert(0, str(example))
    try:
        from autoopt_example_plugin import plugin
    finally:
        sys.path.remove(str(example))
    plugins = load_plugins(entry_points=False)
    plugins.register(plugin, "example", version="0.1.0", source="autoopt-example-plugin")
    cfg = policy(detectors=["example_cusum"], params={"example_cusum": {"warmup": 30, "h": 8.0}})
    detectors = from_plugins(plugins, cfg)
    rng = np.random.default_rng(5)
    values = np.clip(np.r_[rng.normal(0.55, 0.03, 60), rng.normal(0.75, 0.03, 30)], 0, 1)
    events = signals([float(v) for v in values])
    state, fired = State(), []
    for i, e in enumerate(events):  # through a checkpoint before every event
        state, out = decide(State.from_bytes(state.to_bytes()), e, e.ts_event, cfg,
                            detectors=detectors)
        fired += [(i, c.reason) for c in out if c.kind == "retrain"]
    assert [r for _, r in fired] == ["drift.example_cusum"] and fired[0][0] >= 60
    again = State()  # a replay without checkpoints: the same decision, the same state
    result = replay_decisions(events, cfg, state=again, detectors=detectors)
    assert [(r.index, r.commands[0].reason) for r in result.decisions] == fired
    assert again.to_bytes() == state.to_bytes()
    (raw,) = State.from_bytes(state.to_bytes()).data.symbols["GOOG"].detectors.values()
    assert detectors.factory("example_cusum").from_bytes(raw).to_bytes() == raw


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTOOPT_")}
    return subprocess.run([sys.executable, "-m", "autoopt.cli", *args], capture_output=True,
                          text=True, env={**clean, "COLUMNS": "250", **env}, timeout=180)


def _one_line(out: subprocess.CompletedProcess[str], *expected: str) -> None:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr and lines[0].startswith("error: ")
    for text in expected:
        assert text in lines[0], lines[0]


def test_cli_config_names_a_detector_no_plugin_registers(tmp_path: Path) -> None:
    env = {"AUTOOPT_DATA_DIR": str(tmp_path), "AUTOOPT_POLICY__DRIFT__DETECTORS": "psi,mean_shift"}
    # `known:` also lists installed plugins' detectors (CI installs the example's example_cusum)
    _one_line(_cli(env, "config"), "policy.drift.detectors[1]", "'mean_shift'",
              "known: adwin, ", "ks, page_hinkley, psi")


# ---------------------------------------------------------------------------- the real service

SERVICE_CONFIG = """
data_dir = "{data}"
symbols = ["GOOG"]
[nats]
urls = ["{url}"]
[pipeline]
models = ["lgbm"]
trials = 3
threads = 1
pruning = false
[pipeline.gate]
margin = 0.0
dsr_threshold = 0.0
min_trades = 0
max_pbo = 1.0
holdout_min_sharpe = -inf
[policy]
schedule = "off"
cooldown_s = 0
[policy.drift]
detectors = ["mean_shift"]
streams = ["prediction"]
[policy.drift.params.mean_shift]
warmup = 20
threshold = 0.25
patience = 5
[service]
http_port = 0
tick_interval_s = 0
ack_wait_s = 3
max_job_age_s = 0
checkpoint_every = 5
"""


async def _events(log: EventLog, cls: type[Event]) -> list[Event]:
    return [e async for e in log.replay(subject_filter_for_type(cls))]


async def _until(what: str, check: Any, served: asyncio.Task[None]) -> Any:
    """Poll ``check()`` until it is truthy (the service runs in this loop); fail if it ends."""
    for _ in range(3000):
        found = await check()
        if found:
            return found
        if served.done():
            served.result()
            raise AssertionError(f"the service stopped before {what}")
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {what} after 300 s of polling")


async def test_plugin_detector_fires_a_retrain_in_the_service_and_replays(
        event_log: EventLog, nats_server: str, tmp_path: Path) -> None:
    cfg_path = tmp_path / "autoopt.toml"
    cfg_path.write_text(SERVICE_CONFIG.format(data=tmp_path / "data", url=nats_server))
    config: Config = load_config(cfg_path, environ={})
    plugins = plugins_with_detector()
    await load_bars(plugins.data_source_for("bundled:GOOG"), "bundled:GOOG", ["GOOG"], event_log,
                    batch_rows=1000)
    service = Service(config, event_log, plugins)
    served = asyncio.create_task(service.run())
    try:
        for event in signals(CALM_THEN_SHIFT[:35], t0=1):
            await event_log.append(event)

        async def drift_retrain() -> list[DecisionMade]:
            return [d for d in await _events(event_log, DecisionMade) if d.kind == "retrain"]

        (decision,) = await _until("drift retrain", drift_retrain, served)
        assert decision.reason == "drift.mean_shift", decision
        assert decision.details["detector"] == "mean_shift"
        assert decision.details["stream"] == "prediction" and decision.details["n"] == 35
        await _until("the retrain's end", lambda: _events(event_log, TrainingFinished), served)
        # the promotion resets the champion's detectors: let the core take it in first
        (promoted,) = await _until("the promotion", lambda: _events(event_log, ModelPromoted),
                                   served)

        async def champion_is_in() -> bool:
            assert service.decider is not None
            return service.decider.state.champion("GOOG") == promoted.release_id

        await _until("the core taking in the promotion", champion_is_in, served)
        for event in signals([0.5] * 7, t0=10**6):  # after the release: a fresh detector's state
            await event_log.append(event)

        async def calm_values_seen() -> bool:
            assert service.decider is not None
            sym = service.decider.state.symbol("GOOG")
            return sym is not None and sym.detector_counts.get("mean_shift.prediction") == 7

        await _until("the core taking in the calm signals", calm_values_seen, served)
    finally:
        service.stop.set()
        await asyncio.wait_for(served, 120)
    assert [e.symbol for e in await _events(event_log, ModelReleased)] == ["GOOG"]

    checkpoint = await (await Checkpoints.open(event_log, config)).load()
    assert checkpoint is not None
    saved, seq = checkpoint
    raw = saved.data.symbols["GOOG"].detectors["mean_shift.prediction"]
    assert MeanShift.from_bytes(raw).n == 7
    assert MeanShiftFactory().from_bytes(raw).to_bytes() == raw

    items = [(r.event, r.time_ns) async for r in event_log.replay_records(CORE_STREAM, end_seq=seq)]
    replayed = State()
    result = replay_decisions(items, config, state=replayed,
                              detectors=from_plugins(plugins_with_detector(), config))
    assert [c.reason for c in result.retrains()] == ["drift.mean_shift"]
    recorded = await _events(event_log, DecisionMade)
    assert verify_recorded(recorded, result) == len(recorded)  # each decision, id and details
    again = replay_decisions(items, config, detectors=from_plugins(plugins_with_detector(), config))
    assert again.digest == result.digest and not result.failed
    assert replayed.digest() == saved.digest()  # the service's checkpoint = the replayed state

    # a replay where the plugin is not installed: one line naming the missing detector
    with pytest.raises(ConfigError, match="unknown drift detector 'mean_shift'"):
        from_plugins(load_plugins(entry_points=False), config)
    out = _cli({"AUTOOPT_CONFIG": str(cfg_path)}, "replay", "--decisions", "-q")
    _one_line(out, "unknown drift detector 'mean_shift'", "policy.drift.detectors[0]")
    assert msgspec.structs.asdict(config.policy.drift)["params"] == PARAMS
