"""Restartable loopback nats-servers: one node or a routed JetStream cluster.

Why: fault tests and the fault benchmark kill -9 a server and start it again as the *same*
server (same name, port, routes and store dir), which `autoopt.log.EmbeddedServer` (random
port, clean shutdown) does not do. Everything binds 127.0.0.1; every wait has a timeout.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from autoopt.log import find_nats_server


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (held open together so none repeats)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _http_json(url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


class NatsNode:
    """One nats-server process on fixed ports and a fixed store dir, so it can be killed and
    started again as the same server (same name, URL, routes and data)."""

    def __init__(self, root: Path, name: str, cluster: dict[str, Any] | None,
                 ports: tuple[int, int] | None = None) -> None:
        """``ports``: (client, monitoring); a cluster passes ports drawn with its route ports,
        so that no node's port repeats another's (drawn apart, a port closed after one draw
        could come back in the next: seen once as a client port equal to a route port)."""
        self.name = name
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port, self.http_port = ports if ports is not None else free_ports(2)
        self.url = f"nats://127.0.0.1:{self.port}"
        self.conf = self.dir / "server.conf"
        self._cluster = cluster
        self.proc: subprocess.Popen[bytes] | None = None

    def write_conf(self) -> None:
        conf: dict[str, Any] = {
            "server_name": self.name,
            "host": "127.0.0.1",
            "port": self.port,
            "http": f"127.0.0.1:{self.http_port}",
            "max_payload": 8 * 1024 * 1024,
            "jetstream": {"store_dir": str(self.dir / "js")},
        }
        if self._cluster is not None:
            conf["cluster"] = self._cluster
        self.conf.write_text(json.dumps(conf, indent=2))  # nats-server reads JSON configs

    def start(self, timeout: float = 20.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        self.write_conf()
        with open(self.dir / "server.log", "ab") as out:
            self.proc = subprocess.Popen(
                [find_nats_server(), "-c", str(self.conf)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while _http_json(f"http://127.0.0.1:{self.http_port}/varz") is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server {self.name} did not start:\n{self.log_tail()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """kill -9: no goodbye to clients or peers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log_tail(self, n: int = 30) -> str:
        path = self.dir / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""

    def jsz(self) -> dict[str, Any] | None:
        return _http_json(f"http://127.0.0.1:{self.http_port}/jsz")


class NatsCluster:
    """Three (or ``size``) loopback nats-servers with JetStream, routed into one cluster (one
    node: a plain server). `kill` / `restart` a node by name; `wait_for_meta_leader` after."""

    def __init__(self, root: Path, size: int = 3, cluster_name: str = "autoopt-test") -> None:
        names = [f"n{i + 1}" for i in range(size)]
        ports = free_ports(3 * size)  # every node's client, monitoring and route port at once
        route_ports = ports[2 * size:] if size > 1 else []
        self.nodes: dict[str, NatsNode] = {}
        for i, name in enumerate(names):
            cluster = None
            if size > 1:
                cluster = {
                    "name": cluster_name,
                    "listen": f"127.0.0.1:{route_ports[i]}",
                    "routes": [
                        f"nats-route://127.0.0.1:{p}" for j, p in enumerate(route_ports) if j != i
                    ],
                }
            self.nodes[name] = NatsNode(root, name, cluster, (ports[2 * i], ports[2 * i + 1]))

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes.values()]

    def start(self) -> None:
        for node in self.nodes.values():
            node.start()
        self.wait_for_meta_leader()

    def kill(self, name: str) -> None:
        self.nodes[name].kill()

    def restart(self, name: str) -> None:
        self.nodes[name].start()

    def meta_leader(self) -> str | None:
        """The JetStream meta leader as a live node sees it (None: no quorum / none yet)."""
        for node in self.nodes.values():
            if node.proc is None or node.proc.poll() is not None:
                continue
            info = node.jsz() or {}
            leader = (info.get("meta_cluster") or {}).get("leader")
            if len(self.nodes) == 1 and info.get("config"):
                return node.name
            if leader:
                return str(leader)
        return None

    def wait_for_meta_leader(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while (leader := self.meta_leader()) is None:
            if time.monotonic() > deadline:
                tails = "\n".join(f"-- {n.name}\n{n.log_tail(10)}" for n in self.nodes.values())
                raise RuntimeError(f"no JetStream meta leader within {timeout}s\n{tails}")
            time.sleep(0.1)
        return leader

    def close(self) -> None:
        for node in self.nodes.values():
            node.kill()


__all__ = ["NatsCluster", "NatsNode", "free_ports"]
