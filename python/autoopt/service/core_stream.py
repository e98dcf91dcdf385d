"""The CORE stream: one totally ordered copy of every event the decision core reads.

Why: the core's inputs live in several category streams (metrics, signals, trades, training,
models, feature batches) and JetStream orders messages only within a stream. A stream that
*sources* those gives one sequence for all of them, and its storage timestamp is the core's
clock. Every service instance and every replay reads CORE in that same order at those same
times, so the same log and config give the same decisions. Bars (bulky, not a core input) and
the core's own decisions are not sourced.
"""

from __future__ import annotations

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamSource

from autoopt.log import EventLog
from autoopt.log.retry import retrying
from autoopt.log.streams import reconcile
from autoopt.subjects import subject_filter

CORE_STREAM = "CORE"

# (origin stream, subject filter) pairs copied into CORE, in this order.
CORE_SOURCES: tuple[tuple[str, str], ...] = (
    ("MARKET", subject_filter("market", "features")),
    ("SIGNALS", subject_filter("signal", "emitted")),
    ("TRADES", subject_filter("trade", "outcome")),
    ("METRICS", "autoopt.metrics.>"),
    ("TRAINING", "autoopt.training.>"),
    ("MODELS", "autoopt.model.>"),
)


def core_stream_config(replicas: int = 1) -> StreamConfig:
    """CORE's config; ``replicas`` comes from ``nats.replicas`` like every other stream's."""
    return StreamConfig(
        name=CORE_STREAM,
        description="ordered input of the decision core (sourced from the category streams)",
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        num_replicas=replicas,
        allow_direct=True,
        sources=[StreamSource(name=name, filter_subject=filt) for name, filt in CORE_SOURCES],
    )


async def ensure_core_stream(log: EventLog, *, apply: bool = False) -> str:
    """Create the CORE stream if it is missing ("created"); an existing one is compared with the
    config and never downgraded ("exists", differences logged; `reconcile`), and with ``apply``
    gets the safe changes ("updated"). Retries while the cluster has no leader."""
    change = await retrying(
        lambda: reconcile(log.js, core_stream_config(log.settings.replicas), apply=apply),
        what=f"creating or checking stream {CORE_STREAM}",
        deadline_s=3 * log.settings.request_timeout_s,
    )
    return "created" if change.action == "created" else (
        "updated" if change.action == "updated" else "exists"
    )


async def core_last_seq(log: EventLog) -> int:
    """The last sequence stored in CORE (0 when empty)."""
    info = await log.js.stream_info(CORE_STREAM)
    return int(info.state.last_seq)
