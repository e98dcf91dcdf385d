"""The service's alert component: follows the log, applies the rules, delivers each alert to
its destinations and appends it as an `AlertRaised` (with who got it and who did not).

Start: the log's history is folded without delivering (so a restart does not page anyone for
last week, and the refusal streak continues where it was); from then on new events are read
every ``alerts.poll_s``. With several service instances, enable alerts on one of them (each
would deliver; the `AlertRaised` ids dedup, the webhooks do not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from autoopt.alerts.rules import WATCHED, RuleSettings, RuleState, evaluate
from autoopt.alerts.webhook import Destination, deliver
from autoopt.events import AlertRaised

if TYPE_CHECKING:
    from autoopt.config import AlertsConfig
    from autoopt.log import EventLog
    from autoopt.log.eventlog import Record

log = logging.getLogger(__name__)


def destinations(cfg: AlertsConfig) -> list[Destination]:
    return [Destination(name=d.name, url=d.url_secret, format=d.format,
                        min_severity=d.min_severity, rules=tuple(d.rules))
            for d in cfg.destinations]


class Alerter:
    def __init__(self, event_log: EventLog, cfg: AlertsConfig, *,
                 champion_event: str = "promoted") -> None:
        from autoopt.logquery import replay_targets

        self.log = event_log
        self.cfg = cfg
        self.settings = RuleSettings(enabled=tuple(cfg.rules), refusal_streak=cfg.refusal_streak,
                                     cooldown_s=cfg.cooldown_s, champion_event=champion_event)
        self.state = RuleState()
        self.destinations = destinations(cfg)
        self._targets = replay_targets(WATCHED)
        self._last: dict[int, int] = {}
        self.raised: list[AlertRaised] = []
        """Alerts raised by this process (newest last; tests read it)."""

    async def _new_records(self) -> list[Record]:
        from autoopt.errors import EventLogError

        records: list[Record] = []
        for i, target in enumerate(self._targets):
            try:
                async for batch in self.log.replay_batches(target,
                                                           start_seq=self._last.get(i, 0) + 1):
                    records.extend(batch)
                    self._last[i] = batch[-1].seq
            except EventLogError as exc:  # a stream not created yet
                log.debug("alerts: %s", exc)
        records.sort(key=lambda r: (r.time_ns, r.seq))
        return records

    async def catch_up(self) -> None:
        """Fold the history without delivering."""
        for r in await self._new_records():
            evaluate(self.state, r.event, r.time_ns, self.settings)

    async def step(self, session: object) -> list[AlertRaised]:
        """Read what is new, deliver and record the alerts it raises."""
        out = []
        for r in await self._new_records():
            for alert in evaluate(self.state, r.event, r.time_ns, self.settings):
                out.append(await self._send(session, alert))
        return out

    async def _send(self, session: object, alert: AlertRaised) -> AlertRaised:
        import msgspec

        wanted = [d for d in self.destinations if d.wants(alert)]
        results = await asyncio.gather(*(
            deliver(session, d, alert, timeout_s=self.cfg.timeout_s, retries=self.cfg.retries,
                    backoff_s=self.cfg.backoff_s) for d in wanted))
        failed = {d.name: err for d, err in zip(wanted, results, strict=True) if err is not None}
        done = msgspec.structs.replace(
            alert, delivered=[d.name for d in wanted if d.name not in failed], failed=failed)
        for err in failed.values():
            log.warning("alert %s not delivered: %s", alert.rule, err)
        try:
            await self.log.append(done)
        except Exception as exc:  # the alert went out; its record is best effort
            log.warning("alert %s not recorded: %s", alert.rule, exc)
        self.raised.append(done)
        return done

    async def run(self, stop: asyncio.Event) -> None:
        import aiohttp

        await self.catch_up()
        log.info("alerts: following the log for %s, to %s", ", ".join(self.settings.enabled),
                 ", ".join(d.name for d in self.destinations) or "no destination (events only)")
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                await self.step(session)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.cfg.poll_s):
                        await stop.wait()


__all__ = ["Alerter", "destinations"]
