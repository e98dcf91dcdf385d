"""Webhook delivery: one POST per alert and destination, retried with backoff.

Formats
    ``json``   the alert as JSON: ``rule``, ``severity``, ``title``, ``text``, ``symbol``,
               ``details``, ``event_id``, ``cause_id``, ``time`` (ISO UTC) - for any receiver.
    ``slack``  Slack's incoming-webhook shape (``text`` plus one ``section`` block), which
               Mattermost, Rocket.Chat and Discord's ``/slack`` endpoints also take.

Retries: a connection error, a timeout, 429 or a 5xx is retried up to ``retries`` times after
``backoff_s`` x 2^attempt seconds (capped at 30 s); another 4xx is not (the request itself is
wrong). Every request has a timeout. Errors name the destination, never its URL (a Slack URL
holds its token).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

import msgspec

from autoopt.events import AlertRaised

_ICON = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


def json_payload(alert: AlertRaised) -> dict[str, Any]:
    return {
        "rule": alert.rule, "severity": alert.severity, "title": alert.title,
        "text": alert.text, "symbol": alert.symbol, "details": alert.details,
        "event_id": alert.event_id, "cause_id": alert.cause_id,
        "time": dt.datetime.fromtimestamp(alert.ts_event / 1e9, tz=dt.UTC).isoformat(),
    }


def slack_payload(alert: AlertRaised) -> dict[str, Any]:
    head = f"{_ICON.get(alert.severity, '')} *{alert.title}*".strip()
    return {
        "text": f"{head}\n{alert.text}",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn",
                                                 "text": f"{head}\n{alert.text}"}}],
    }


@dataclass(frozen=True)
class Destination:
    name: str
    url: str
    format: str = "json"
    min_severity: str = "info"
    rules: tuple[str, ...] = ()
    """Rules this destination receives (empty: all)."""

    def wants(self, alert: AlertRaised) -> bool:
        from autoopt.alerts.rules import SEVERITY_ORDER

        if self.rules and alert.rule not in self.rules:
            return False
        return SEVERITY_ORDER.get(alert.severity, 0) >= SEVERITY_ORDER.get(self.min_severity, 0)

    def payload(self, alert: AlertRaised) -> bytes:
        body = slack_payload(alert) if self.format == "slack" else json_payload(alert)
        return msgspec.json.encode(body)


async def deliver(session: Any, dest: Destination, alert: AlertRaised, *, timeout_s: float,
                  retries: int, backoff_s: float) -> str | None:
    """POST ``alert`` to ``dest``; None when a 2xx answered, else the last error (one line)."""
    import aiohttp

    body = dest.payload(alert)
    error = "not sent"
    for attempt in range(retries + 1):
        if attempt:
            await asyncio.sleep(min(30.0, backoff_s * 2 ** (attempt - 1)))
        try:
            async with session.post(dest.url, data=body,
                                    headers={"Content-Type": "application/json"},
                                    timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                if 200 <= resp.status < 300:
                    return None
                error = f"{dest.name}: HTTP {resp.status}"
                if resp.status != 429 and resp.status < 500:
                    return error  # the request is wrong: retrying will not help
        except TimeoutError:
            error = f"{dest.name}: no answer within {timeout_s:g}s"
        except aiohttp.ClientError as exc:
            error = f"{dest.name}: {type(exc).__name__}"
    return f"{error} (after {retries + 1} attempts)"


__all__ = ["Destination", "deliver", "json_payload", "slack_payload"]
