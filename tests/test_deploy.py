"""docs/deploy.md's settings are the settings the code reads, and compose's `cluster` profile is
the layout it describes (3 routed NATS nodes, two instances sharing registry and studies)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from autoopt.config import load_config

ROOT = Path(__file__).parent.parent


def test_every_toml_block_in_deploy_md_loads(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 3
    configs = []
    for i, block in enumerate(blocks):
        path = tmp_path / f"{i}.toml"
        path.write_text(block)
        configs.append(load_config(path, environ={"AUTOOPT_DATA_DIR": str(tmp_path)}))
    several = configs[1]
    assert several.registry.backend == "nats" and several.pipeline.optuna_storage == "nats"
    assert several.nats.replicas == 3 and len(several.nats.urls) == 3
    assert configs[2].pipeline.optuna_storage.startswith("postgresql+psycopg://")


def test_compose_cluster_profile() -> None:
    raw = (ROOT / "docker" / "compose.yaml").read_text().replace("${", "$${")
    services = yaml.safe_load(raw)["services"]
    cluster = {n: s for n, s in services.items() if s.get("profiles") == ["cluster"]}
    assert set(cluster) == {"nats-1", "nats-2", "nats-3", "autoopt-a", "autoopt-b"}
    names = {cluster[f"nats-{i}"]["environment"]["SERVER_NAME"] for i in (1, 2, 3)}
    assert names == {"nats-1", "nats-2", "nats-3"}
    conf = (ROOT / "docker" / "nats-cluster.conf").read_text()
    assert all(f"nats-route://nats-{i}:6222" in conf for i in (1, 2, 3))
    assert "server_name: $SERVER_NAME" in conf and "password: $AUTOOPT_NATS_PASSWORD" in conf
    a, b = cluster["autoopt-a"], cluster["autoopt-b"]
    assert a["environment"] == b["environment"]
    env = a["environment"]
    assert env["AUTOOPT_REGISTRY__BACKEND"] == "nats"
    assert env["AUTOOPT_PIPELINE__OPTUNA_STORAGE"] == "nats"
    assert env["AUTOOPT_NATS__REPLICAS"] == "3"
    assert env["AUTOOPT_NATS_URL"].count("nats://nats-") == 3
    data = [next(v for v in s["volumes"] if v.endswith(":/data")) for s in (a, b)]
    assert data[0] != data[1]  # each instance its own data dir
