"""`pipeline.optuna_storage` → an Optuna storage (see the package docstring)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from autoopt.errors import ConfigError
from autoopt.log.connect import NatsSettings

_lock = threading.Lock()
_nats: tuple[NatsSettings, str | None] | None = None
_open: dict[str, Any] = {}
_SCHEMA_LOCK = 0x6175746F6F7074  # "autoopt": serialises Optuna's table creation


def configure_nats(settings: NatsSettings, data_dir: str | Path | None = None) -> None:
    """The NATS a ``nats`` storage URL means in this process (the config's ``[nats]``)."""
    global _nats
    with _lock:
        _nats = (settings, str(data_dir) if data_dir is not None else None)


def open_storage(url: str | None) -> Any:
    """The storage ``url`` names: None (in memory), an SQLAlchemy URL (SQLite, PostgreSQL through
    psycopg 3) or ``nats[:<STREAM>]`` (a JetStream journal). One storage per URL per process."""
    if url is None:
        return None
    if url.startswith("postgresql"):
        if not url.startswith("postgresql+psycopg://"):
            raise ConfigError(
                f"pipeline.optuna_storage: PostgreSQL URLs use the psycopg 3 driver: "
                f"postgresql+psycopg://user:password@host:5432/db (got {url.split(':', 1)[0]}://...)")
        return _cached(url, lambda: _postgres(url))
    if url == "nats" or url.startswith("nats:") and not url.startswith("nats://"):
        return _cached(f"{url} {_nats!r}", lambda: _journal(url))  # per configured NATS
    if url.startswith("sqlite:///"):
        return _cached(url, lambda: _sqlite(url))
    if url.startswith("nats://"):
        raise ConfigError("pipeline.optuna_storage: write `nats` (the configured [nats] servers) "
                          "or `nats:<STREAM>`, not a server URL")
    return url


def _cached(url: str, make: Any) -> Any:
    with _lock:
        if url not in _open:
            _open[url] = make()
        return _open[url]


def _sqlite(url: str) -> Any:
    """Optuna's RDB storage on SQLite, its tables created under a file lock: processes that
    open a fresh database at once otherwise collide (``table ... already exists``)."""
    import fcntl

    import optuna

    path = Path(url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _write_ahead_log(path)
        storage = optuna.storages.RDBStorage(url)
    _sync_normal(storage.engine)
    return storage


def _write_ahead_log(path: Path) -> None:
    """Put the study database in SQLite's write-ahead-log mode (a property of the file, kept
    across connections): a study commits once per trial step, and in the default rollback
    journal each commit waits for two disk syncs (measured: 12 s of a 98 s one-symbol retrain
    on a loaded 2-core machine). Readers and one writer in other processes on this host still
    work; WAL needs a local file system, which a SQLite study needs anyway."""
    import sqlite3

    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def _sync_normal(engine: Any) -> None:
    """``synchronous=NORMAL`` on every connection of the storage's pool: in WAL mode a commit
    then survives a crash of the process (what a retrain's resume relies on) and only a power
    loss can take back the last trials, which a resumed study reruns."""
    from sqlalchemy import event

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened while the tables were created reconnect with it


def _postgres(url: str) -> Any:
    import optuna

    try:
        import psycopg
    except ImportError:
        raise ConfigError("pipeline.optuna_storage is PostgreSQL but psycopg 3 is not installed "
                          "(pip install 'psycopg[binary]')") from None
    try:
        # Optuna creates its tables on first use; two workers doing it at once on a fresh
        # database collide (duplicate pg_type rows), so creation holds an advisory lock
        with psycopg.connect("postgresql://" + url.split("://", 1)[1], connect_timeout=10,
                             autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs={
                    "pool_pre_ping": True, "connect_args": {"connect_timeout": 10}})
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
    except Exception as exc:  # a refused connection, bad credentials: one line, no password
        from autoopt.redact import redact

        raise ConfigError(f"pipeline.optuna_storage: cannot open {redact(url)}: "
                          f"{str(exc).splitlines()[0]}") from None


def _journal(url: str) -> Any:
    from optuna.storages import JournalStorage

    from autoopt.studies.journal_nats import DEFAULT_STREAM, NatsJournalBackend
    from autoopt.syncnats import SyncNats

    if _nats is None:
        raise ConfigError("pipeline.optuna_storage = nats, but no NATS is configured here")
    settings, data_dir = _nats
    stream = url.split(":", 1)[1] if ":" in url else DEFAULT_STREAM
    return JournalStorage(NatsJournalBackend(SyncNats(settings, data_dir=data_dir), stream))


__all__ = ["configure_nats", "open_storage"]
