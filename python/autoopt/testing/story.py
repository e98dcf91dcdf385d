"""A small, real history of one symbol for the visibility tests and benchmarks: a decision
with evidence asks for a retrain that releases (real LightGBM/Optuna on the bundled bars), a
drift report follows, and a stricter gate refuses the next challenger.

Why here: `autoopt why`, the release and retrain reports, the dashboard and the alert tests all
read the same kind of log; one builder makes it the same way for each of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from autoopt.config import Config, GateSettings, PipelineConfig, load_config
from autoopt.events import DecisionMade, DriftReported

if TYPE_CHECKING:
    from autoopt.log import EventLog
    from autoopt.pipeline.summary import RetrainSummary


@dataclass
class Story:
    symbol: str
    decision: DecisionMade
    released: RetrainSummary
    """The run the decision caused: it released ``release_id``."""
    refused: RetrainSummary
    """The later run with a strict gate: refused, the champion kept."""
    drift: DriftReported

    @property
    def release_id(self) -> str:
        rid = self.released.results[0].release_id
        assert rid is not None, self.released.results[0].reasons
        return rid


# the gate's optional checks, opened wide where this version of the gate has them
_OPEN_CHECKS = {"max_pbo": 1.0, "holdout_min_sharpe": -1e9}


def story_config(data_dir: str, urls: list[str], *, trials: int = 3) -> Config:
    """A fast config: few trials, no pruning, a permissive gate (the first run releases)."""
    gate: dict[str, float] = {"margin": 0.0, "dsr_threshold": 0.0, "min_trades": 0}
    gate |= {k: v for k, v in _OPEN_CHECKS.items() if k in GateSettings.__struct_fields__}
    return load_config(environ={}, overrides={
        "data_dir": data_dir, "nats": {"urls": urls},
        "pipeline": {"trials": trials, "pruning": False, "gate": gate},
    })


def strict(config: Config) -> Config:
    """The same config with a gate no challenger passes."""
    p: PipelineConfig = config.pipeline
    gate = msgspec.structs.replace(p.gate, margin=10.0, dsr_threshold=1.0, min_trades=10**9)
    return msgspec.structs.replace(config, pipeline=msgspec.structs.replace(p, gate=gate))


async def build_story(config: Config, event_log: EventLog, symbol: str = "GOOG") -> Story:
    """Append the story of ``symbol`` (bundled bars) to ``event_log``; see the module doc."""
    from autoopt.pipeline import run_retrain

    decision = DecisionMade.new(
        symbol=symbol, kind="retrain", reason="drift.psi", policy="drift",
        details={"psi": 0.31, "threshold": 0.2, "feature": "ret1"}, commands=["retrain"],
    )
    await event_log.append(decision)
    released = await run_retrain(config, source=f"bundled:{symbol}", event_log=event_log,
                                 symbols=[symbol], cause=decision)
    drift = DriftReported.new(symbol=symbol, stream="features", statistic="psi", value=0.42,
                              threshold=0.2, drifted=True, detector="psi", feature="vol20")
    await event_log.append(drift)
    refused = await run_retrain(strict(config), source=f"bundled:{symbol}",
                                event_log=event_log, symbols=[symbol])
    return Story(symbol, decision, released, refused, drift)


__all__ = ["Story", "build_story", "story_config", "strict"]
