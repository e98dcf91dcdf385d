"""What one routed batch stores in the log: its routes as one `SignalsRouted`, plus the rest.

Why: one log write per router batch instead of one per routed signal. The routes are kept
already encoded (the bytes that were delivered, from the native table or from `encode`) and
spliced into the batch event with `msgspec.Raw`, so storing a batch never re-encodes a route.
The batch event's id is derived from its first and last route, so storing the same batch twice
dedups, and readers count a route stored in two batches (a redelivery cut differently) once by
its own derived id.
"""

from __future__ import annotations

import struct
import time
from typing import TYPE_CHECKING, Any, cast

import msgspec

from autoopt.clock import Clock
from autoopt.events import Event, SignalRouted, SignalsRouted
from autoopt.ids import derived_event_id

if TYPE_CHECKING:
    from autoopt.ab.router import RoutePlan

RouteIds = tuple[str, str, str]  # (event_id, causation_id, correlation_id)


def array_header(n: int) -> bytes:
    """The msgpack array header for ``n`` items (as msgspec writes it)."""
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


class RouteRecords:
    """Accumulates a batch's encoded routes and other records (assignments) in order."""

    __slots__ = ("_parts", "n_routes", "_first", "_last", "_last_ts", "others", "deliveries")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.n_routes = 0
        self._first: RouteIds | None = None
        self._last: RouteIds | None = None
        self._last_ts = 0
        self.others: list[Event] = []  # records stored beside the routes (VariantAssigned)
        self.deliveries = 0

    def add_encoded(
        self, routes: bytes, n: int, first: RouteIds | None, last: RouteIds | None, ts_init: int
    ) -> None:
        """``n`` routes, encoded back to back, whose first and last have these ids."""
        if n == 0:
            return
        self._parts.append(routes)
        self.n_routes += n
        if self._first is None:
            self._first = first
        self._last = last
        self._last_ts = ts_init

    def merge(self, other: RouteRecords) -> None:
        """Append ``other``'s routes and records after this one's."""
        if other.n_routes:
            self._parts += other._parts
            self.n_routes += other.n_routes
            if self._first is None:
                self._first = other._first
            self._last, self._last_ts = other._last, other._last_ts
        self.others += other.others
        self.deliveries += other.deliveries

    def add_plan(self, plan: RoutePlan) -> None:
        """One signal routed by `SignalRouter.route`: its routes are its first records, and
        their payloads its deliveries, in the same order."""
        self.deliveries += len(plan.deliveries)
        for i, rec in enumerate(plan.records):
            if isinstance(rec, SignalRouted):
                ids = (rec.event_id, rec.causation_id or "", rec.correlation_id or "")
                self.add_encoded(plan.deliveries[i][1], 1, ids, ids, rec.ts_init)
            else:
                self.others.append(rec)

    def events(self, router: str, clock: Clock | None = None) -> list[Event]:
        """The events to append: the `SignalsRouted` (if any route), then the others."""
        out: list[Event] = []
        if self.n_routes and self._first is not None and self._last is not None:
            now = clock.now_ns() if clock is not None else time.time_ns()
            first, last = self._first, self._last
            routes = msgspec.Raw(array_header(self.n_routes) + b"".join(self._parts))
            out.append(
                SignalsRouted(
                    event_id=derived_event_id(first[0], f"batch/{self.n_routes}/{last[0]}"),
                    ts_event=self._last_ts,
                    ts_init=now,
                    causation_id=first[1],
                    correlation_id=first[2],
                    router=router,
                    routes=cast(Any, routes),  # pre-encoded SignalRouted maps, spliced as is
                )
            )
        out.extend(self.others)
        return out


__all__ = ["RouteIds", "RouteRecords", "array_header"]
