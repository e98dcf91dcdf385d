"""How autoopt reaches NATS: one settings struct, turned into `nats.connect` arguments.

`NatsSettings` is embedded in the global config as the ``[nats]`` section. With ``urls`` empty,
autoopt runs its own embedded server (`autoopt.log.server`) in the data dir.

Authentication (at most one of): ``user`` + ``password``, ``token``, ``nkeys_seed`` (a seed file
path, or the seed itself when it starts with ``SU``), ``creds_file`` (a decentralised-auth
``.creds`` file). TLS: ``tls_ca`` verifies the server; ``tls_cert`` + ``tls_key`` present a client
certificate; any ``nats+tls://`` / ``tls://`` URL or TLS field turns TLS on.

Connecting (`dial`): ``connect_timeout_s`` bounds the whole first connection end to end: every
server, every attempt, the TLS handshake and the authentication. nats-py applies its own
``connect_timeout`` per step and retries the first connection like a reconnect, so on its own an
untrusted certificate or a server that never answers keeps it busy far longer. Within the budget
the first connection retries each server ``connect_attempts`` times; a failure that retrying
cannot fix (a certificate that does not verify, refused credentials) ends it at once. Either way
the error is one line naming the cause. Once connected, the client reconnects up to
``max_reconnect_attempts`` times (-1: forever), ``reconnect_wait_s`` apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from autoopt.errors import ConfigError, EventLogError
from autoopt.redact import redact

if TYPE_CHECKING:
    from nats.aio.client import Client

log = logging.getLogger("autoopt.log")
ErrorCallback = Callable[[Exception], Awaitable[None]]

_SCHEMES = ("nats://", "tls://", "nats+tls://", "ws://", "wss://")


class NatsSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Connection and stream settings for the event log (config section ``[nats]``)."""

    urls: list[str] = msgspec.field(default_factory=list)
    user: str | None = None
    password: str | None = None
    token: str | None = None
    nkeys_seed: str | None = None
    creds_file: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_hostname: str | None = None
    replicas: Annotated[int, msgspec.Meta(ge=1, le=5)] = 1
    market_max_age_s: Annotated[float, msgspec.Meta(ge=0.0)] = 30 * 86_400.0
    name: str = "autoopt"
    connect_timeout_s: Annotated[float, msgspec.Meta(gt=0.0)] = 10.0
    """Bound on the whole first connection (all servers and attempts, TLS and auth included)."""
    request_timeout_s: Annotated[float, msgspec.Meta(gt=0.0)] = 10.0
    connect_attempts: Annotated[int, msgspec.Meta(ge=1)] = 3
    max_reconnect_attempts: int = 60
    reconnect_wait_s: Annotated[float, msgspec.Meta(ge=0.0)] = 2.0
    max_pending_acks: Annotated[int, msgspec.Meta(ge=1)] = 4000

    def __post_init__(self) -> None:
        for url in self.urls:
            if not url.startswith(_SCHEMES):
                raise ConfigError(
                    f"nats.urls: {redact(url)!r} must start with one of {', '.join(_SCHEMES)}"
                )
        methods = [
            key
            for key, on in (
                ("user/password", self.user is not None or self.password is not None),
                ("token", self.token is not None),
                ("nkeys_seed", self.nkeys_seed is not None),
                ("creds_file", self.creds_file is not None),
            )
            if on
        ]
        if len(methods) > 1:
            raise ConfigError(f"nats: choose one authentication method, got {', '.join(methods)}")
        if (self.user is None) != (self.password is None):
            raise ConfigError("nats.user and nats.password must be set together")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("nats.tls_cert and nats.tls_key must be set together")
        if self.replicas > 1 and len(self.urls) == 0:
            raise ConfigError(
                f"nats.replicas={self.replicas} needs a cluster (nats.urls); the embedded server "
                "is a single node"
            )

    @property
    def embedded(self) -> bool:
        """True when autoopt should run its own server."""
        return not self.urls

    @property
    def tls_enabled(self) -> bool:
        return (
            any(u.startswith(("tls://", "nats+tls://", "wss://")) for u in self.urls)
            or self.tls_ca is not None
            or self.tls_cert is not None
        )


def _existing(path: str, key: str) -> str:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"nats.{key}: file {str(p)!r} does not exist")
    return str(p)


def tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    """The client TLS context the settings ask for, or None without TLS."""
    if not settings.tls_enabled:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    try:
        if settings.tls_ca is not None:
            ctx.load_verify_locations(cafile=_existing(settings.tls_ca, "tls_ca"))
        if settings.tls_cert is not None and settings.tls_key is not None:
            ctx.load_cert_chain(
                certfile=_existing(settings.tls_cert, "tls_cert"),
                keyfile=_existing(settings.tls_key, "tls_key"),
            )
    except ssl.SSLError as exc:
        raise ConfigError(f"nats TLS files could not be loaded: {exc}") from exc
    return ctx


def connect_options(settings: NatsSettings, urls: list[str] | None = None) -> dict[str, Any]:
    """Keyword arguments for `nats.connect` (``urls`` overrides ``settings.urls``)."""
    servers = list(urls if urls is not None else settings.urls)
    if not servers:
        raise ConfigError("nats.urls is empty and no embedded server URL was given")
    opts: dict[str, Any] = {
        "servers": servers,
        "name": settings.name,
        "connect_timeout": settings.connect_timeout_s,
        "max_reconnect_attempts": settings.max_reconnect_attempts,
        "reconnect_time_wait": settings.reconnect_wait_s,
    }
    if settings.user is not None:
        opts["user"] = settings.user
        opts["password"] = settings.password
    if settings.token is not None:
        opts["token"] = settings.token
    if settings.nkeys_seed is not None:
        seed = settings.nkeys_seed
        if seed.startswith("SU") and not Path(seed).exists():
            opts["nkeys_seed_str"] = seed
        else:
            opts["nkeys_seed"] = _existing(seed, "nkeys_seed")
    if settings.creds_file is not None:
        opts["user_credentials"] = _existing(settings.creds_file, "creds_file")
    ctx = tls_context(settings)
    if ctx is not None:
        opts["tls"] = ctx
        if settings.tls_hostname is not None:
            opts["tls_hostname"] = settings.tls_hostname
    return opts


def describe_connect_error(exc: BaseException, attempt_timeout: float) -> str:
    """One line naming why a connection attempt failed (TLS, credentials, silence...)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if _is_auth_error(exc):
        return (
            "authorization violation: the server refused the credentials (nats.user/password, "
            "token, nkeys_seed or creds_file)"
        )
    if isinstance(exc, TimeoutError):
        return (
            f"no NATS greeting within {attempt_timeout:g}s (is it a NATS server? does it expect "
            "TLS?)"
        )
    text = str(exc).strip() or type(exc).__name__
    return redact(f"{type(exc).__name__}: {text}" if isinstance(exc, OSError) else text)


def _is_auth_error(exc: BaseException) -> bool:
    return "authorization violation" in str(exc).lower() or type(exc).__name__ in (
        "AuthorizationError",
    )


def _is_fatal(exc: BaseException) -> bool:
    """Failures that another attempt cannot fix: end the first connection at once."""
    return isinstance(exc, ssl.SSLCertVerificationError) or _is_auth_error(exc)


async def dial(
    settings: NatsSettings, urls: list[str] | None = None, *, error_cb: ErrorCallback | None = None
) -> Client:
    """A connected nats-py client, or `EventLogError` naming the cause within
    ``settings.connect_timeout_s``; ``error_cb`` sees the errors after the first connection."""
    from nats.aio.client import Client

    opts = connect_options(settings, urls)
    budget = settings.connect_timeout_s
    # each server gets connect_attempts tries inside the budget: one silent server cannot take it
    tries = len(opts["servers"]) * settings.connect_attempts
    attempt_timeout = max(budget / tries, min(budget, 1.0))
    opts["connect_timeout"] = attempt_timeout
    # nats-py applies max_reconnect_attempts to the first connection too: bound that by
    # connect_attempts (retries per server), then restore the budget for outages.
    opts["max_reconnect_attempts"] = settings.connect_attempts
    where = redact(", ".join(opts["servers"]))
    seen: list[BaseException] = []
    fatal = asyncio.Event()
    connected = False

    async def on_error(exc: Exception) -> None:
        if connected:
            if error_cb is not None:
                await error_cb(exc)
            return
        seen.append(exc)
        log.debug("nats connect attempt failed: %s", describe_connect_error(exc, attempt_timeout))
        if _is_fatal(exc):
            fatal.set()

    nc = Client()
    attempt = asyncio.ensure_future(nc.connect(**opts, error_cb=on_error))
    stop = asyncio.ensure_future(fatal.wait())
    try:
        await asyncio.wait({attempt, stop}, timeout=budget, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not attempt.done():
            attempt.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(attempt, 2.0)
    failure = None if attempt.cancelled() else attempt.exception()
    if attempt.cancelled() or failure is not None:
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(nc.close(), 2.0)
        if fatal.is_set():
            cause = describe_connect_error(next(e for e in seen if _is_fatal(e)), attempt_timeout)
        elif seen:  # nats-py ends with NoServersError; the last attempt's error says why
            cause = describe_connect_error(seen[-1], attempt_timeout)
            if attempt.cancelled():
                cause = f"no connection within nats.connect_timeout_s={budget:g}s; last: {cause}"
        elif failure is not None:
            cause = describe_connect_error(failure, attempt_timeout)
        else:
            cause = f"no connection within nats.connect_timeout_s={budget:g}s"
        raise EventLogError(f"could not connect to NATS at {where}: {cause}") from failure
    connected = True
    # reconnects after an outage: the full per-attempt timeout and the outage budget
    nc.options["connect_timeout"] = budget
    nc.options["max_reconnect_attempts"] = settings.max_reconnect_attempts
    return nc


__all__ = ["NatsSettings", "connect_options", "describe_connect_error", "dial", "tls_context"]
