"""The registry on NATS (`registry.backend = "nats"`): two hosts with different data dirs share
releases, checksums, `current` and rollback through one server and through the 3-node cluster;
a blob changed in the store is refused; a watcher in another process follows a release made
here."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from autoopt.config import load_config
from autoopt.errors import ArtifactError
from autoopt.events import ModelPromoted, ModelReleased, ModelRolledBack
from autoopt.log import EventLog, NatsSettings
from autoopt.plugins import load_plugins
from autoopt.registry import ModelRegistry, manifest_bytes, open_registry, sha256_bytes
from autoopt.registry_nats import NatsModelRegistry
from autoopt.testing.cluster import NatsCluster

SYM = "BTC/USDT"


def _save(reg: ModelRegistry, seed: int, parent: str | None) -> str:
    return reg.save(SYM, {"model.txt": f"model {seed}".encode(), "extra.bin": bytes([seed]) * 64},
                    model_type="test", created_at=1_000 + seed, data_range=(0, 10),
                    parent_release=parent).release_id


@pytest.fixture
def hosts(tmp_path: Path, nats_settings: NatsSettings):
    a = NatsModelRegistry(tmp_path / "host-a", nats_settings)
    b = NatsModelRegistry(tmp_path / "host-b", nats_settings)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_config_picks_the_backend(tmp_path: Path, nats_server: str) -> None:
    env = {"AUTOOPT_DATA_DIR": str(tmp_path), "AUTOOPT_NATS_URL": nats_server}
    local = open_registry(load_config(environ=env))
    assert type(local) is ModelRegistry
    shared = open_registry(load_config(environ={**env, "AUTOOPT_REGISTRY__BACKEND": "nats"}))
    try:
        assert isinstance(shared, NatsModelRegistry) and shared.symbols() == []
    finally:
        shared.close()


def test_two_hosts_share_releases_current_and_rollback(hosts) -> None:
    a, b = hosts
    first = _save(a, 1, None)
    second = _save(a, 2, first)
    assert b.current(SYM) is None
    a.set_current(SYM, second)
    assert b.current(SYM) == second  # host b reads the KV bucket, not its own disk
    ma, fa = a.load(SYM)
    mb, fb = b.load(SYM)
    assert mb == ma and fb == fa and mb.sha256 == ma.sha256
    assert manifest_bytes(mb) == (b.release_dir(SYM, second) / "manifest.json").read_bytes()
    assert [e.release_id for e in b.entries(SYM)] == [first, second]
    assert b.symbols() == [SYM]
    assert a.uri(SYM, second) == b.uri(SYM, second) == f"nats-obj://autoopt-models/BTC%2FUSDT/{second}"
    assert b.rollback(SYM) == (second, first)  # a rollback on b is what a sees
    assert a.current(SYM) == first
    # saving the same content again (from either host) is the same release, not a conflict
    assert _save(b, 2, first) == second


def test_release_staged_on_one_host_is_published_by_another(hosts) -> None:
    a, b = hosts
    manifest, blobs = a.prepare(SYM, {"model.txt": b"staged"}, model_type="test", created_at=5,
                                data_range=(0, 1), parent_release=None)
    a.stage(manifest, blobs)
    assert b.entries(SYM) == []  # staged is hidden
    assert b.publish(SYM, manifest.release_id) == manifest  # a job resumed on host b
    assert a.publish(SYM, manifest.release_id) == manifest  # idempotent
    assert [e.release_id for e in a.entries(SYM)] == [manifest.release_id]
    with pytest.raises(ArtifactError, match="neither staged nor published"):
        b.publish(SYM, "0123456789abcdef")


def test_blob_changed_in_the_store_is_refused(hosts, tmp_path: Path,
                                              nats_settings: NatsSettings) -> None:
    a, _ = hosts
    rid = _save(a, 3, None)
    a._put(f"BTC%2FUSDT/{rid}/model.txt", b"model 3 but edited")
    fresh = NatsModelRegistry(tmp_path / "host-c", nats_settings)  # an empty cache
    try:
        with pytest.raises(ArtifactError, match="SHA-256 mismatch for 'model.txt'"):
            fresh.load(SYM, rid)
        with pytest.raises(ArtifactError, match="SHA-256 mismatch"):
            fresh.set_current(SYM, rid)
        assert fresh.current(SYM) is None
        entries = fresh.entries(SYM)
        assert len(entries) == 1 and entries[0].manifest is None
        assert not fresh.release_dir(SYM, rid).exists()  # nothing unverified enters the cache
    finally:
        fresh.close()


def test_cluster_keeps_releases_through_a_node_loss(nats_cluster: NatsCluster,
                                                    tmp_path: Path) -> None:
    settings = NatsSettings(urls=nats_cluster.urls, replicas=3, connect_timeout_s=10.0,
                            request_timeout_s=10.0)
    a = NatsModelRegistry(tmp_path / "a", settings)
    try:
        first = _save(a, 1, None)
        a.set_current(SYM, first)
    finally:
        a.close()
    nats_cluster.kill("n1")
    nats_cluster.wait_for_meta_leader()
    survivors = NatsSettings(urls=nats_cluster.urls[1:], replicas=3, connect_timeout_s=10.0,
                             request_timeout_s=10.0)
    b = NatsModelRegistry(tmp_path / "b", survivors)
    try:
        assert b.current(SYM) == first
        assert b.load(SYM)[1]["model.txt"] == b"model 1"
        second = _save(b, 2, first)
        b.set_current(SYM, second)
        assert b.current(SYM) == second
    finally:
        b.close()


# ------------------------------------------------------------- a watcher on another host

_WATCHER = """
import asyncio, sys
from autoopt.client import ModelWatcher
from autoopt.config import load_config

async def main():
    def swapped(new, old):
        print("swap", new.release_id, new.manifest.sha256, flush=True)
    watcher = await ModelWatcher.open("GOOG", load_config(), on_swap=swapped)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the test closes our stdin
    await watcher.close()

asyncio.run(main())
"""


def _lines(proc: subprocess.Popen[str]) -> list[str]:
    out: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line.strip())

    threading.Thread(target=pump, daemon=True).start()
    return out


def _wait_line(proc: subprocess.Popen[str], lines: list[str], prefix: str, n: int = 1) -> list[str]:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = [x for x in lines if x.startswith(prefix)]
        if len(got) >= n:
            return got
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    err = proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
    raise AssertionError(f"no {prefix!r} x{n} from the watcher: {lines} {err}")


def _model(seed: int) -> dict[str, bytes]:
    trainer = load_plugins().trainer("lgbm")
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + rng.normal(scale=0.5, size=300) > 0).astype(np.int8)
    return trainer.fit(X, y, {"num_leaves": 7, "num_boost_round": 10}, ("f0", "f1", "f2"),
                       seed=seed).to_files()


@pytest.mark.parametrize("where", ["server", "cluster"])
async def test_watcher_on_another_host_follows_releases(where: str, tmp_path: Path,
                                                        request: pytest.FixtureRequest) -> None:
    if where == "cluster":
        urls = request.getfixturevalue("nats_cluster").urls
        settings = NatsSettings(urls=urls, replicas=3, connect_timeout_s=10.0)
    else:
        urls = [request.getfixturevalue("nats_server")]
        settings = NatsSettings(urls=urls, connect_timeout_s=10.0)
    env = {**os.environ, "AUTOOPT_DATA_DIR": str(tmp_path / "host-b"),
           "AUTOOPT_NATS_URL": ",".join(urls), "AUTOOPT_REGISTRY__BACKEND": "nats",
           "AUTOOPT_NATS__REPLICAS": str(settings.replicas)}
    log = await EventLog.connect(settings)
    reg = NatsModelRegistry(tmp_path / "host-a", settings)
    proc = subprocess.Popen([sys.executable, "-c", _WATCHER], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = _lines(proc)
        _wait_line(proc, lines, "ready")
        rids = []
        for seed in (1, 2):
            m = reg.save("GOOG", _model(seed), model_type="lightgbm", trainer="lgbm",
                         created_at=seed, features=("f0", "f1", "f2"), data_range=(0, 300),
                         parent_release=rids[-1] if rids else None)
            await log.append(ModelReleased.new(
                symbol="GOOG", release_id=m.release_id, model_type=m.model_type, sha256=m.sha256,
                uri="", manifest_sha256=sha256_bytes(manifest_bytes(m))))
            reg.set_current("GOOG", m.release_id)
            await log.append(ModelPromoted.new(symbol="GOOG", release_id=m.release_id))
            rids.append(m.release_id)
            swaps = _wait_line(proc, lines, "swap", seed)
            assert swaps[-1] == f"swap {m.release_id} {m.sha256}"
        frm, to = reg.rollback("GOOG")
        await log.append(ModelRolledBack.new(symbol="GOOG", release_id=to, from_release_id=frm))
        assert _wait_line(proc, lines, "swap", 3)[-1].split()[1] == rids[0]
        assert (tmp_path / "host-b" / "models" / "GOOG" / rids[1] / "model.txt").exists()
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        reg.close()
        await log.close()


def test_unreachable_server_is_one_artifact_error(tmp_path: Path) -> None:
    from autoopt.testing.cluster import free_ports

    dead = NatsSettings(urls=[f"nats://127.0.0.1:{free_ports(1)[0]}"], connect_timeout_s=1.0)
    reg = NatsModelRegistry(tmp_path, dead)
    try:
        with pytest.raises(ArtifactError, match=r"^registry on NATS: get current\.GOOG: .*"
                           r"could not connect to NATS") as info:
            reg.current("GOOG")
        assert "\n" not in str(info.value)
    finally:
        reg.close()
