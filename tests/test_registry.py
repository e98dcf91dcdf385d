"""Model registry on real files: checksums, content addressing, atomic `current`, rollback."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from autoopt.errors import ArtifactError
from autoopt.registry import ModelRegistry, artifact_set_sha256, sha256_bytes

MODEL_A = b"tree\nversion=v4\nnum_leaves=31\n"
MODEL_B = b"tree\nversion=v4\nnum_leaves=63\n"


@pytest.fixture
def reg(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "data")


def _save(reg: ModelRegistry, model: bytes, created: int, symbol: str = "EURUSD", **kw):
    return reg.save(
        symbol,
        {"model.txt": model, "features.json": b'["ret_1","sma_20"]'},
        model_type="lightgbm",
        created_at=created,
        params={"num_leaves": 31, "learning_rate": 0.05},
        features=["ret_1", "sma_20"],
        metrics={"sharpe": 1.2, "sortino": float("inf")},
        data_range=(1_000, 2_000),
        feature_importances={"ret_1": 0.7, "sma_20": 0.3},
        **kw,
    )


def test_save_layout_manifest_and_load(reg: ModelRegistry) -> None:
    m = _save(reg, MODEL_A, created=10)
    rdir = reg.models / "EURUSD" / m.release_id
    assert sorted(p.name for p in rdir.iterdir()) == ["features.json", "manifest.json", "model.txt"]
    on_disk = json.loads((rdir / "manifest.json").read_text())
    assert on_disk["files"]["model.txt"] == sha256_bytes(MODEL_A)
    assert on_disk["sha256"] == artifact_set_sha256(m.files)
    assert on_disk["data_range"] == {"start": 1_000, "end": 2_000}
    assert on_disk["metrics"] == {"sharpe": 1.2, "sortino": None}  # inf is not JSON
    assert m.parent_release is None and m.feature_importances["ret_1"] == 0.7
    loaded, blobs = reg.load("EURUSD", m.release_id)
    assert loaded == m and blobs["model.txt"] == MODEL_A
    assert not [p for p in (reg.models / "EURUSD").iterdir() if p.name.startswith(".")]


def test_content_addressed_and_idempotent(reg: ModelRegistry, tmp_path: Path) -> None:
    a1 = _save(reg, MODEL_A, created=10)
    a2 = _save(reg, MODEL_A, created=10)  # a retried save: same release, no error
    assert a1 == a2 and len(reg.list("EURUSD")) == 1
    b = _save(reg, MODEL_B, created=10)
    assert b.release_id != a1.release_id
    # a release dir whose name is taken by other content is refused, not overwritten
    squatter = reg.release_dir("EURUSD", b.release_id)
    (squatter / "model.txt").write_bytes(MODEL_A)
    with pytest.raises(ArtifactError, match="SHA-256 mismatch for 'model.txt'"):
        _save(reg, MODEL_B, created=10)
    (squatter / "model.txt").write_bytes(MODEL_B)
    # files may also come from paths
    p = tmp_path / "m.txt"
    p.write_bytes(MODEL_A)
    c = reg.save("EURUSD", {"model.txt": p}, model_type="lightgbm", created_at=1, data_range=(0, 1))
    assert reg.load("EURUSD", c.release_id)[1]["model.txt"] == MODEL_A


def test_checksum_mismatch_refused_naming_the_file(reg: ModelRegistry) -> None:
    m = _save(reg, MODEL_A, created=10)
    path = reg.release_dir("EURUSD", m.release_id) / "model.txt"
    path.write_bytes(MODEL_A.replace(b"31", b"32"))
    with pytest.raises(ArtifactError, match=r"SHA-256 mismatch for 'model.txt'"):
        reg.load("EURUSD", m.release_id)
    path.unlink()
    with pytest.raises(ArtifactError, match=r"file 'model.txt' is missing"):
        reg.load("EURUSD", m.release_id)


def test_tampered_manifest_refused(reg: ModelRegistry) -> None:
    m = _save(reg, MODEL_A, created=10)
    mpath = reg.release_dir("EURUSD", m.release_id) / "manifest.json"
    doc = json.loads(mpath.read_text())
    doc["files"]["model.txt"] = sha256_bytes(MODEL_B)
    (mpath.parent / "model.txt").write_bytes(MODEL_B)  # file and its digest swapped together
    mpath.write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="edited after release"):
        reg.load("EURUSD", m.release_id)


def test_current_parent_and_rollback(reg: ModelRegistry) -> None:
    assert reg.current("EURUSD") is None
    a = _save(reg, MODEL_A, created=10)
    reg.set_current("EURUSD", a.release_id)
    b = _save(reg, MODEL_B, created=20)  # parent defaults to the current release
    assert b.parent_release == a.release_id
    reg.set_current("EURUSD", b.release_id)
    assert reg.load("EURUSD")[1]["model.txt"] == MODEL_B
    assert reg.rollback("EURUSD") == (b.release_id, a.release_id)
    assert reg.current("EURUSD") == a.release_id
    assert reg.load("EURUSD")[1]["model.txt"] == MODEL_A
    with pytest.raises(ArtifactError, match="no parent"):
        reg.rollback("EURUSD")
    assert reg.rollback("EURUSD", to=b.release_id) == (a.release_id, b.release_id)
    assert [m.release_id for m in reg.list("EURUSD")] == [a.release_id, b.release_id]


def test_set_current_refuses_corrupt_release_and_keeps_old(reg: ModelRegistry) -> None:
    a = _save(reg, MODEL_A, created=10)
    b = _save(reg, MODEL_B, created=20)
    reg.set_current("EURUSD", a.release_id)
    (reg.release_dir("EURUSD", b.release_id) / "model.txt").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="model.txt"):
        reg.set_current("EURUSD", b.release_id)
    assert reg.current("EURUSD") == a.release_id
    with pytest.raises(ArtifactError, match="not found"):
        reg.set_current("EURUSD", "nope")


def test_switch_is_atomic_under_concurrent_reads(reg: ModelRegistry) -> None:
    a = _save(reg, MODEL_A, created=10)
    b = _save(reg, MODEL_B, created=20)
    reg.set_current("EURUSD", a.release_id)
    # a crashed switch leaves a stray temp link: it must not disturb anything
    os.symlink(b.release_id, reg.symbol_dir("EURUSD") / ".current.tmp-crashed")
    valid = {a.release_id, b.release_id}
    stop = threading.Event()
    seen: list[str | None] = []

    def flip() -> None:
        for i in range(300):
            reg.set_current("EURUSD", b.release_id if i % 2 == 0 else a.release_id)
        stop.set()

    t = threading.Thread(target=flip)
    t.start()
    while not stop.is_set():
        seen.append(reg.current("EURUSD"))
        m, blobs = reg.load("EURUSD")
        assert blobs["model.txt"] == (MODEL_A if m.release_id == a.release_id else MODEL_B)
    t.join()
    assert seen and set(seen) <= valid
    assert reg.current("EURUSD") == a.release_id  # last flip (i=299) set a
    leftovers = [p.name for p in reg.symbol_dir("EURUSD").iterdir() if p.name.startswith(".current.tmp")]
    assert leftovers == [".current.tmp-crashed"]
    assert [m.release_id for m in reg.list("EURUSD")] == [a.release_id, b.release_id]


def test_symbol_and_name_safety(reg: ModelRegistry) -> None:
    m = _save(reg, MODEL_A, created=1, symbol="BTC/USDT")
    assert (reg.models / "BTC%2FUSDT" / m.release_id / "model.txt").is_file()
    assert reg.load("BTC/USDT", m.release_id)[0].symbol == "BTC/USDT"
    for bad in ("..", ""):
        with pytest.raises(ArtifactError, match="invalid symbol"):
            reg.current(bad)
    with pytest.raises(ArtifactError, match="invalid file name"):
        reg.save("X", {"../evil": b"x"}, model_type="m", created_at=1, data_range=(0, 1))
    with pytest.raises(ArtifactError, match="invalid release id"):
        reg.release_dir("X", "current")
    assert reg.list("NOPE") == []
