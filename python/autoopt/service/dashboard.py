"""The live dashboard at ``/`` on the service's HTTP port: server-rendered HTML (no build step,
no external asset), read-only.

`DashboardFeed` folds the log into a `DashboardState` (first everything stored, then what is new
every ``refresh_s``, merged across streams by storage time); `render_page` turns the state into
one page. The page polls ``/dashboard/version`` and swaps its body in place when the log moved,
so it updates after a new event without a reload. Links lead to reports built on demand from
the log (`autoopt.reports`): a run's retrain report, a release's, an experiment's.

Access: `check_access` lets every request through on a loopback address; bound beyond
loopback, a request needs the configured token as ``Authorization: Bearer <token>``, or once
as ``?token=`` (answered with an HttpOnly cookie and a redirect that drops it from the URL).
Without a configured token the dashboard then answers 403 and says which setting to set.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from autoopt.reports.html import Html, esc
from autoopt.service.dashboard_state import DASHBOARD_TYPES, DashboardState

if TYPE_CHECKING:
    from autoopt.log import EventLog

log = logging.getLogger(__name__)

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
COOKIE = "autoopt_dashboard"


class DashboardFeed:
    """Keeps a `DashboardState` up to date from the log: `load` once, then `run` polls."""

    def __init__(self, event_log: EventLog, refresh_s: float = 2.0) -> None:
        from autoopt.logquery import replay_targets

        self.log = event_log
        self.refresh_s = refresh_s
        self.state = DashboardState()
        self.loaded = asyncio.Event()
        self._targets = replay_targets(DASHBOARD_TYPES)
        self._last: dict[int, int] = {}  # target index -> last sequence applied

    async def poll(self) -> int:
        """Apply what the log stored since the last poll (all of it the first time), merged
        across streams by storage time; returns how many events were applied."""
        from nats.js.errors import NotFoundError

        from autoopt.errors import EventLogError

        records = []
        for i, target in enumerate(self._targets):
            start = self._last.get(i, 0) + 1
            try:
                async for batch in self.log.replay_batches(target, start_seq=start):
                    records.extend(batch)
                    self._last[i] = batch[-1].seq
            except (EventLogError, NotFoundError) as exc:  # a stream not created yet
                log.debug("dashboard: %s", exc)
        records.sort(key=lambda r: (r.time_ns, r.seq))
        for r in records:
            self.state.apply(r.event, r.time_ns)
        return len(records)

    async def load(self) -> None:
        await self.poll()
        self.loaded.set()

    async def run(self, stop: asyncio.Event) -> None:
        if not self.loaded.is_set():
            await self.load()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.refresh_s):
                    await stop.wait()
            if not stop.is_set():
                await self.poll()


# ------------------------------------------------------------------------------ access


def token_required(host: str) -> bool:
    """True when the service listens beyond loopback (every interface, a LAN address...)."""
    return host not in LOOPBACK


def check_access(host: str, token: str, headers: Any, cookies: Any,
                 query: Any) -> tuple[int, str]:
    """(0, "") when the request may see the dashboard, (302, cookie value) to trade a
    ``?token=`` for a cookie, else (status, reason)."""
    if not token_required(host):
        return 0, ""
    if not token:
        return 403, ("the dashboard is bound beyond loopback (service.http_host) and needs "
                     "service.dashboard_token (or AUTOOPT_SERVICE__DASHBOARD_TOKEN)")
    given = ""
    auth = headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        given = auth[len("Bearer "):].strip()
    elif cookies.get(COOKIE):
        given = cookies.get(COOKIE)
    elif query.get("token"):
        if hmac.compare_digest(query.get("token").encode(), token.encode()):
            return 302, token
        return 401, "bad token"
    if given and hmac.compare_digest(given.encode(), token.encode()):
        return 0, ""
    return 401, "a bearer token is required (Authorization: Bearer <service.dashboard_token>)"


# ------------------------------------------------------------------------------ page


def _ago(now_ns: int, ns: int) -> str:
    s = max(0.0, (now_ns - ns) / 1e9)
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    if s < 2 * 86400:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


def _when(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _num(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def report_url(kind: str, *parts: str) -> str:
    """The dashboard's link to a report: ``/reports/<kind>?id=<part>&id=<part>`` (query values,
    so a symbol such as ``BTC/USDT`` survives)."""
    from urllib.parse import urlencode

    return f"/reports/{kind}?" + urlencode([("id", p) for p in parts])


def _link(href: str, text: str) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>' if href else str(esc(text))


def _table(head: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{esc(empty)}</p>'
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def render_body(state: DashboardState, now_ns: int, status: tuple[bool, str]) -> str:
    """The page's ``<main>``: every cell escaped (symbols, reasons and ids are data)."""
    ok, why = status
    parts = [
        f'<p class="status {"ok" if ok else "bad"}">service {"ready" if ok else esc(why)} · '
        f"{state.n_releases} releases, {state.n_refusals} refusals, {state.n_decisions} "
        f"decisions in the log · as of {esc(_when(now_ns))} UTC</p>"
    ]
    week = state.since(now_ns - 7 * 86_400 * 10**9)
    order = ("release", "refusal", "rollback", "retrain", "alert", "dead letter", "error")
    told = ", ".join(f"{week[k]} {k}{'s' if week[k] != 1 else ''}" for k in order if week.get(k))
    parts.append(f'<p class="week"><b>Last 7 days:</b> {esc(told or "nothing happened")}</p>')
    rows = []
    for c in sorted(state.champions.values(), key=lambda c: c.symbol):
        live = c.live.get("sharpe")
        exp = c.expected.get("sharpe")
        drift = "–"
        if c.drift is not None:
            d = c.drift
            flag = "DRIFT " if d.drifted else ""
            drift = esc(f"{flag}{d.statistic} {d.value:.3g}/{d.threshold:.3g} "
                        f"({d.feature or d.stream}, {_ago(now_ns, c.drift_at_ns)} ago)")
        rows.append([
            str(esc(c.symbol)),
            _link(report_url("release", c.symbol, c.release_id), c.release_id),
            str(esc(f"{_ago(now_ns, c.since_ns)} ({c.how})")), str(esc(c.trainer or "–")),
            str(esc(_num(live))) + (f' <span class="dim">({_ago(now_ns, c.live_at_ns)} ago)</span>'
                                     if c.live_at_ns else ""),
            str(esc(_num(exp))), str(drift), str(c.refusal_streak),
        ])
    parts.append("<section><h2>Champions</h2>" + _table(
        ["symbol", "release", "age", "trainer", "live Sharpe", "expected Sharpe (gate)",
         "drift", "refusal streak"], rows, "No release in the log yet.") + "</section>")
    jobs = []
    for j in sorted(state.jobs.values(), key=lambda j: j.started_ns):
        total = max(j.total, 1)
        jobs.append([
            str(esc(j.symbol)), str(esc(j.model)), _link(report_url("retrain", j.job), j.job),
            f'<progress max="{total}" value="{min(j.done, total)}"></progress> '
            f"{esc(f'{j.done}/{j.total} {j.stage}')}",
            str(esc(_ago(now_ns, j.started_ns))),
        ])
    parts.append("<section><h2>Running jobs</h2>" + _table(
        ["symbol", "model", "run", "progress", "running for"], jobs, "Nothing running.")
        + "</section>")
    recent = [[str(esc(_when(f.at_ns))), str(esc(f.symbol)), str(esc(f.kind)),
               _link(f.link, f.text)] for f in reversed(state.recent)]
    parts.append("<section><h2>Recent decisions and verdicts</h2>" + _table(
        ["stored", "symbol", "kind", "what and why"], recent, "No decision yet.") + "</section>")
    exps = [[_link(report_url("ab", x.name), x.name), str(esc(x.symbol)), str(esc(x.status)),
             str(esc(", ".join(x.variants))), str(esc(x.champion)),
             str(esc(f"{x.winner or '–'} {x.reason}"))]
            for x in sorted(state.experiments.values(), key=lambda x: -x.updated_ns)]
    parts.append("<section><h2>Experiments</h2>" + _table(
        ["experiment", "symbol", "status", "variants", "champion", "outcome"], exps,
        "No experiment.") + "</section>")
    letters = [[str(esc(_when(at))), str(esc(f"{e.stream}/{e.seq}")), str(esc(e.subject)),
                str(esc(e.error))] for at, e in reversed(state.recent_letters)]
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(state.dead_letters.items()))
    parts.append(f"<section><h2>Dead letters{esc(' (' + counts + ')' if counts else '')}</h2>"
                 + _table(["stored", "origin", "subject", "reason"], letters,
                          "No dead letters.") + "</section>")
    alerts = [[str(esc(_when(at))), str(esc(a.severity)), str(esc(a.rule)), str(esc(a.title)),
               str(esc(", ".join(a.delivered) or "–"))] for at, a in reversed(state.alerts)]
    alerts += [[str(esc(_when(at))), "error", str(esc(e.component)),
                str(esc(f"{e.error_type}: {e.message}")), "–"] for at, e in reversed(state.errors)]
    parts.append("<section><h2>Alerts and errors</h2>" + _table(
        ["stored", "severity", "rule", "what", "delivered to"], alerts, "None.") + "</section>")
    return "".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;
background:#fafafa}
header{background:#17324d;color:#fff;padding:14px 28px}header h1{margin:0;font-size:20px}
main{padding:4px 28px 24px;max-width:1500px}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;margin:14px 0;padding:6px 14px}
h2{font-size:16px;margin:8px 0}table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{padding:4px 9px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f3f5f7}.status.ok{color:#1b6e20}.status.bad{color:#a00}.dim{color:#888}
.empty{color:#777;font-style:italic}progress{width:140px}
"""

_JS = """
let version = %VERSION%;
async function tick() {
  try {
    const r = await fetch("/dashboard/version", {cache: "no-store"});
    if (r.ok) {
      const v = (await r.json()).version;
      if (v !== version) {
        const b = await fetch("/dashboard/body", {cache: "no-store"});
        if (b.ok) { document.querySelector("main").innerHTML = await b.text(); version = v; }
      }
    }
  } catch (e) { /* the service restarts: try again at the next tick */ }
  document.body.dataset.version = String(version);
}
document.body.dataset.version = String(version);
setInterval(tick, %MS%);
"""


def render_page(state: DashboardState, now_ns: int, status: tuple[bool, str],
                refresh_s: float) -> str:
    body = render_body(state, now_ns, status)
    script = _JS.replace("%VERSION%", str(state.version)).replace(
        "%MS%", str(max(200, int(refresh_s * 1000))))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>autoopt</title><style>{_CSS}</style></head><body>"
        "<header><h1>autoopt · what it decided and why</h1></header>"
        f"<main>{body}</main><script>{script}</script></body></html>"
    )


async def report_page(event_log: EventLog, kind: str, parts: list[str]) -> str:
    """A report built on demand from the log (``retrain/RUN``, ``release/SYMBOL[/RELEASE]``,
    ``ab/NAME``), drawn in a thread (the service's loop keeps serving); ConfigError when the
    log does not hold it."""
    from autoopt.errors import ConfigError

    if kind == "retrain" and len(parts) == 1:
        from autoopt.reports.retrain import build_retrain_report, read_run

        run = await read_run(event_log, parts[0])
        return await asyncio.to_thread(lambda: build_retrain_report(run).render())
    if kind == "release" and len(parts) in (1, 2):
        from autoopt.reports.release import build_release_report, read_release

        rec = await read_release(event_log, parts[0], parts[1] if len(parts) == 2 else None)
        return await asyncio.to_thread(lambda: build_release_report(rec).render())
    if kind == "ab" and len(parts) == 1:
        from autoopt.reports.ab import build_ab_report, read_experiment

        exp = await read_experiment(event_log, parts[0])
        return await asyncio.to_thread(lambda: build_ab_report(exp).render())
    raise ConfigError(f"no such report: {kind}/{'/'.join(parts)}")


def now_ns_fn(clock: Any | None) -> Callable[[], int]:
    return clock.now_ns if clock is not None else time.time_ns


__all__ = [
    "DashboardFeed",
    "Html",
    "check_access",
    "render_body",
    "render_page",
    "report_page",
    "report_url",
    "token_required",
]
