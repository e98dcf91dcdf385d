"""The decision core: a pure `decide(state, event, now_ns, config) -> (state, commands)` with the
retrain policies (schedule, degradation, drift, manual) and guards (cooldown, concurrency,
running), checkpointable state, and deterministic replay with a digest and a config diff."""

from autoopt.core.commands import (
    COMMAND_TYPES,
    Command,
    CommandBase,
    Expired,
    Held,
    Retrain,
    Suppressed,
    command_from_decision,
    decision_event,
    decode_commands,
    describe,
    encode_commands,
)
from autoopt.core.decide import decide, ignored
from autoopt.core.replay import (
    DecisionDiff,
    DecisionRecord,
    ReplayResult,
    decisions_digest,
    diff_decisions,
    replay_decisions,
    verify_recorded,
)
from autoopt.core.state import State, SymbolState

__all__ = [
    "COMMAND_TYPES",
    "Command",
    "CommandBase",
    "DecisionDiff",
    "DecisionRecord",
    "Expired",
    "Held",
    "ReplayResult",
    "Retrain",
    "State",
    "Suppressed",
    "SymbolState",
    "command_from_decision",
    "decide",
    "decision_event",
    "decisions_digest",
    "decode_commands",
    "describe",
    "diff_decisions",
    "encode_commands",
    "ignored",
    "replay_decisions",
    "verify_recorded",
]
