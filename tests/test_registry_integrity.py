"""Registry integrity on real files: editing any manifest field, the model file, or both with the
digests recomputed is refused; the log's recorded digests are the authority; a truncated manifest
or a deleted artifact is listed as corrupt by `autoopt releases list` and `show` says so in one
line; the watcher keeps its champion and records the refusal."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from autoopt.cli.releases import app as releases_app
from autoopt.client import ModelWatcher
from autoopt.errors import ArtifactError
from autoopt.events import ErrorRaised, ModelPromoted, ModelReleased
from autoopt.log import EventLog
from autoopt.plugins import load_plugins
from autoopt.registry import (
    Manifest,
    ModelRegistry,
    Recorded,
    artifact_set_sha256,
    manifest_bytes,
    sha256_bytes,
)
from autoopt.subjects import subject_filter_for_type

FEATURES = ("f0", "f1", "f2")


def _model_files(seed: int) -> dict[str, bytes]:
    trainer = load_plugins().trainer("lgbm")
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + rng.normal(scale=0.5, size=300) > 0).astype(np.int8)
    return trainer.fit(X, y, {"num_leaves": 7, "num_boost_round": 15}, FEATURES, seed=seed).to_files()


def _save(reg: ModelRegistry, seed: int, parent: str | None = None) -> Manifest:
    return reg.save(
        "GOOG", _model_files(seed), model_type="lightgbm", trainer="lgbm",
        created_at=1_700_000_000_000_000_000 + seed, params={"num_leaves": 7},
        features=FEATURES, metrics={"sharpe": 1.1, "dsr": 0.97}, data_range=(0, 300),
        parent_release=parent, feature_importances={"perm/f0": 0.2},
    )


def _recorded(m: Manifest) -> Recorded:
    return Recorded(sha256=m.sha256, manifest_sha256=sha256_bytes(manifest_bytes(m)))


@pytest.fixture
def reg(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "data")


def _edit(reg: ModelRegistry, m: Manifest, change: Any) -> None:
    path = reg.release_dir("GOOG", m.release_id) / "manifest.json"
    doc = json.loads(path.read_bytes())
    change(doc)
    path.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")))


FIELD_EDITS = {
    "params": lambda d: d["params"].update(num_leaves=255),
    "features": lambda d: d["features"].reverse(),
    "metrics": lambda d: d["metrics"].update(sharpe=9.9),
    "model_type": lambda d: d.update(model_type="tft"),
    "trainer": lambda d: d.update(trainer="tft"),
    "created_at": lambda d: d.update(created_at=d["created_at"] + 1),
    "data_range": lambda d: d["data_range"].update(end=10**18),
    "parent_release": lambda d: d.update(parent_release="0123456789abcdef"),
    "feature_importances": lambda d: d["feature_importances"].update({"perm/f0": 0.9}),
}


@pytest.mark.parametrize("field", sorted(FIELD_EDITS))
def test_editing_any_manifest_field_is_refused(reg: ModelRegistry, field: str) -> None:
    m = _save(reg, 1)
    reg.load("GOOG", m.release_id, recorded=_recorded(m))  # intact: accepted
    _edit(reg, m, FIELD_EDITS[field])
    with pytest.raises(ArtifactError, match="edited after release"):
        reg.load("GOOG", m.release_id)
    with pytest.raises(ArtifactError, match="edited after release"):
        reg.set_current("GOOG", m.release_id)
    assert reg.current("GOOG") is None


def test_model_file_edits_are_refused_even_with_the_manifest_rehashed(reg: ModelRegistry) -> None:
    m = _save(reg, 2)
    model = reg.release_dir("GOOG", m.release_id) / "model.txt"
    forged = model.read_bytes().replace(b"num_leaves", b"num_leafs", 1)
    model.write_bytes(forged)
    with pytest.raises(ArtifactError, match="SHA-256 mismatch for 'model.txt'"):
        reg.load("GOOG", m.release_id)

    def rehash(doc: dict[str, Any]) -> None:  # digests recomputed to match the forged file
        doc["files"]["model.txt"] = sha256_bytes(forged)
        doc["sha256"] = artifact_set_sha256(doc["files"])

    _edit(reg, m, rehash)
    with pytest.raises(ArtifactError, match="edited after release"):
        reg.load("GOOG", m.release_id)


def test_recorded_digests_are_the_authority(reg: ModelRegistry) -> None:
    a, b = _save(reg, 3), _save(reg, 4)
    reg.load("GOOG", a.release_id, recorded=_recorded(a))
    with pytest.raises(ArtifactError, match="differs from the .* recorded in ModelReleased"):
        reg.load("GOOG", a.release_id, recorded=Recorded(sha256=b.sha256))
    with pytest.raises(ArtifactError, match="manifest.json SHA-256 differs from the one recorded"):
        reg.load("GOOG", a.release_id, recorded=Recorded(
            sha256=a.sha256, manifest_sha256=_recorded(b).manifest_sha256))
    with pytest.raises(ArtifactError, match="recorded in ModelReleased"):
        reg.set_current("GOOG", a.release_id, recorded=Recorded(sha256=b.sha256))
    assert reg.current("GOOG") is None


def _cli(tmp_path: Path, *args: str) -> Any:
    cfg = tmp_path / "autoopt.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    return CliRunner().invoke(releases_app, list(args), env={"AUTOOPT_CONFIG": str(cfg)})


def test_truncated_manifest_and_deleted_artifact_are_listed_as_corrupt(
    reg: ModelRegistry, tmp_path: Path
) -> None:
    good, truncated, gutted = _save(reg, 5), _save(reg, 6), _save(reg, 7)
    reg.set_current("GOOG", good.release_id)
    mpath = reg.release_dir("GOOG", truncated.release_id) / "manifest.json"
    mpath.write_bytes(mpath.read_bytes()[:57])
    (reg.release_dir("GOOG", gutted.release_id) / "model.txt").unlink()

    with pytest.raises(ArtifactError, match="corrupt or truncated"):
        reg.load("GOOG", truncated.release_id)
    with pytest.raises(ArtifactError, match="'model.txt' is missing"):
        reg.load("GOOG", gutted.release_id)
    entries = {e.release_id: e for e in reg.entries("GOOG")}
    assert entries[good.release_id].problem is None
    assert "truncated" in (entries[truncated.release_id].problem or "")
    assert "missing" in (entries[gutted.release_id].problem or "")
    assert [m.release_id for m in reg.list("GOOG")] == [good.release_id]

    res = _cli(tmp_path, "list", "--json")
    assert res.exit_code == 0, res.output
    rows = {r["release_id"]: r for r in json.loads(res.output)}
    assert rows[good.release_id]["status"] == "ok" and rows[good.release_id]["current"]
    assert rows[good.release_id]["trainer"] == "lgbm"
    assert rows[truncated.release_id]["status"] == "corrupt"
    assert rows[gutted.release_id]["status"] == "corrupt"
    res = _cli(tmp_path, "list")
    assert res.exit_code == 0 and "corrupt" in res.output and "Traceback" not in res.output

    res = _cli(tmp_path, "show", "GOOG", truncated.release_id)
    assert res.exit_code == 2
    assert "corrupt or truncated" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = _cli(tmp_path, "show", "GOOG", good.release_id)
    assert res.exit_code == 0 and good.release_id in res.output


async def test_watcher_refuses_an_edited_manifest_and_keeps_its_champion(
    event_log: EventLog, reg: ModelRegistry
) -> None:
    good, bad = _save(reg, 8), _save(reg, 9)
    for m in (good, bad):
        await event_log.append(ModelReleased.new(
            symbol="GOOG", release_id=m.release_id, model_type=m.model_type, sha256=m.sha256,
            uri="", trainer=m.trainer, manifest_sha256=_recorded(m).manifest_sha256))
    await event_log.append(ModelPromoted.new(symbol="GOOG", release_id=good.release_id))
    _edit(reg, bad, FIELD_EDITS["features"])
    errors: list[Exception] = []
    watcher = ModelWatcher("GOOG", log=event_log, registry=reg, plugins=load_plugins(),
                           on_error=lambda exc, ev: errors.append(exc))
    try:
        assert (await watcher.start()).release_id == good.release_id  # type: ignore[union-attr]
        await event_log.append(ModelPromoted.new(
            symbol="GOOG", release_id=bad.release_id, previous_release_id=good.release_id))
        for _ in range(200):
            if errors:
                break
            await asyncio.sleep(0.05)
        assert errors and isinstance(errors[0], ArtifactError)
        assert "edited after release" in str(errors[0])
        assert watcher.current is not None and watcher.current.release_id == good.release_id
        recorded = [e async for e in event_log.replay(
            subject_filter_for_type(ErrorRaised, "model-watcher"))]
        assert [e.details["release_id"] for e in recorded] == [bad.release_id]
        assert recorded[0].error_type == "ArtifactError"
    finally:
        await watcher.close()
