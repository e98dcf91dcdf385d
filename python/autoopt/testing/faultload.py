"""A steady producer of core inputs with a share of hostile messages, for fault drills.

Why: the fault benchmark must show that under load and NATS faults every message a producer
sends ends up either decided by the core or dead-lettered, never lost or doubled. That needs a
load whose every message can be found again in the streams: valid events by their id, hostile
ones (an empty symbol, a NaN, random bytes: what a broken or foreign publisher sends) by their
unique raw bytes, published raw on the core-input subjects where no client validation stops
them. The producer keeps a fixed schedule and records each message's *intended* send time, so
a latency measured from it includes the time a fault kept the producer waiting (no
coordinated omission).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

import msgspec

from autoopt.errors import DataError
from autoopt.events import (
    Event,
    MetricsReported,
    RetrainRequested,
    SignalEmitted,
    TradeOutcome,
    encode,
)
from autoopt.log import EventLog
from autoopt.log.retry import retrying
from autoopt.subjects import subject_for

SYMBOLS = ("BTCUSDT", "ETHUSDT", "GOOG")
HOSTILE_KINDS = ("empty-symbol", "nan-value", "random-bytes")
SEND_DEADLINE_S = 60.0
"""How long the producer retries one message before it counts as not sent (a real engine
client spools to disk instead)."""


@dataclass(frozen=True)
class Hostile:
    """A raw message no valid event decodes from; ``msg_id`` keeps a retried publish single."""

    kind: str
    subject: str
    payload: bytes
    msg_id: str


@dataclass
class Sent:
    """One message the producer sent: ``key`` is the event id (valid) or the msg id (hostile)."""

    key: str
    hostile: bool
    intended_ns: int
    payload: bytes = b""
    sent_ns: int = 0
    """When the first send attempt began (later than ``intended_ns`` when behind schedule)."""
    stored: bool = False
    error: str = ""


def _valid(i: int, rng: random.Random) -> Event:
    sym = SYMBOLS[i % len(SYMBOLS)]
    pick = rng.random()
    if pick < 0.3:  # one symbol per request: every request is decided (a Retrain) at once
        return RetrainRequested.new(symbol=f"RQ{i}", reason="manual", requested_by="faultbench")
    if pick < 0.55:
        sharpe = rng.gauss(1.0, 0.3)
        return MetricsReported.new(
            symbol=sym, window="1h", metrics={"sharpe": sharpe, "hit_rate": 0.5 + sharpe / 20}
        )
    if pick < 0.8:
        return SignalEmitted.new(
            symbol=sym, signal_id=f"s{i}", side=rng.choice(("long", "short")),
            confidence=rng.random(),
        )
    ret = rng.gauss(0.0, 0.01)
    return TradeOutcome.new(
        symbol=sym, trade_id=f"t{i}", side="long", qty=1.0, entry_price=100.0,
        exit_price=100.0 * (1 + ret), fees=0.01, pnl=100.0 * ret - 0.01, return_=ret,
    )


def _hostile(i: int, rng: random.Random) -> Hostile:
    kind = HOSTILE_KINDS[i % len(HOSTILE_KINDS)]
    template = _valid(i, rng)
    while isinstance(template, RetrainRequested):  # needs a symbol-scoped metric-like event
        template = _valid(i + 1, rng)
    subject = subject_for(template)
    fields = msgspec.msgpack.decode(encode(template))
    if kind == "empty-symbol":
        fields["symbol"] = ""
        payload = msgspec.msgpack.encode(fields)
    elif kind == "nan-value":
        numeric = next(k for k in ("pnl", "confidence", "metrics") if k in fields)
        fields[numeric] = {"sharpe": float("nan")} if numeric == "metrics" else float("nan")
        payload = msgspec.msgpack.encode(fields)
    else:  # unique: a random tail after a counter
        payload = b"\xc1garbage-%d-" % i + rng.randbytes(24)
    return Hostile(kind=kind, subject=subject, payload=payload, msg_id=f"hostile-{i}-{kind}")


def build_load(n: int, *, seed: int = 7, hostile_share: float = 0.05) -> list[Event | Hostile]:
    """``n`` messages in send order, about ``hostile_share`` of them hostile (deterministic)."""
    rng = random.Random(seed)
    every = max(1, round(1 / hostile_share)) if hostile_share > 0 else 0
    return [
        _hostile(i, rng) if every and i % every == every - 1 else _valid(i, rng)
        for i in range(n)
    ]


async def _send(log: EventLog, item: Event | Hostile) -> None:
    if isinstance(item, Hostile):
        timeout = log.settings.request_timeout_s
        await retrying(
            lambda: log.js.publish(
                item.subject, item.payload, headers={"Nats-Msg-Id": item.msg_id}, timeout=timeout
            ),
            what=f"publish of hostile {item.msg_id}",
            deadline_s=SEND_DEADLINE_S,
        )
    else:
        await retrying(
            lambda: log.append(item), what=f"append of {item.event_id}",
            deadline_s=SEND_DEADLINE_S,
            # append retried the transient causes itself; only a bad event is final
            transient=lambda exc: not isinstance(exc, DataError),
        )


async def produce(
    log: EventLog, items: list[Event | Hostile], rate: float, *, t0_ns: int | None = None
) -> list[Sent]:
    """Send ``items`` at ``rate`` per second on a fixed schedule (one at a time; a message
    held up by a fault delays the ones behind it, which then go as fast as they can)."""
    start_ns = t0_ns or time.time_ns()
    step_ns = int(1e9 / rate)
    out: list[Sent] = []
    for i, item in enumerate(items):
        intended = start_ns + i * step_ns
        wait = (intended - time.time_ns()) / 1e9
        if wait > 0:
            await asyncio.sleep(wait)
        now = time.time_ns()
        if isinstance(item, Hostile):
            sent = Sent(item.msg_id, True, intended, item.payload, sent_ns=now)
        else:
            sent = Sent(item.event_id, False, intended, sent_ns=now)
        try:
            await _send(log, item)
            sent.stored = True
        except Exception as exc:  # counted, shown as lost: the benchmark says so, not a crash
            sent.error = f"{type(exc).__name__}: {exc}"
        out.append(sent)
    return out


__all__ = ["HOSTILE_KINDS", "Hostile", "Sent", "build_load", "produce"]
