"""A throwaway PostgreSQL for tests and benches: initdb + pg_ctl in a temp dir, a free port.

Why: tests must never rely on a server that happens to be running. The binaries come from
``$AUTOOPT_PG_BIN``, else PATH, else ``/usr/local/bin`` or ``/usr/lib/postgresql/<v>/bin``
(Debian's package layout; `.ci/run` installs it when missing).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from autoopt.testing.cluster import free_ports


def pg_bin_dir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``; RuntimeError naming where it looked."""
    candidates = [os.environ.get("AUTOOPT_PG_BIN", "")]
    found = shutil.which("initdb")
    candidates.append(str(Path(found).parent) if found else "")
    candidates.append("/usr/local/bin")
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found: install postgresql "
                       "(apt-get install postgresql) or set AUTOOPT_PG_BIN")


def _unprivileged_user() -> tuple[int, int]:
    import pwd

    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            continue
    raise RuntimeError("running as root and no postgres/nobody user to run PostgreSQL as")


class PostgresServer:
    """One PostgreSQL cluster on a free loopback port, trust auth, user autoopt, in a fresh
    temp dir (not under a test's tmp_path: as root the server runs as another user, who must
    reach it) that `stop` removes."""

    def __init__(self) -> None:
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="autoopt-pg-"))
        self.data = self.root / "pgdata"
        self.port = free_ports(1)[0]
        self.bin = pg_bin_dir()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://autoopt@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        env = {**os.environ, "LC_ALL": "C"}
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: drop to an unprivileged user
            uid, gid = _unprivileged_user()
            os.chown(self.root, uid, gid)
            cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120,
                              cwd=self.root)
        if proc.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def start(self) -> str:
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-U", "autoopt", "--auth=trust",
                      "--no-sync", "-E", "UTF8")
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c max_connections=100")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "pg.log"), "-o", opts,
                  "-w", "-t", "60", "start")
        return self.url

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


__all__ = ["PostgresServer", "pg_bin_dir"]
