"""The TFT plugin through autoopt's entry points, and what happens when torch is broken."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from autoopt.plugins import load_plugins
from autoopt.plugins.interfaces import Trainer, is_sdk_trainer
from autoopt.search import SearchTrainer


def test_entry_point_registers_the_tft_trainer_beside_lightgbm() -> None:
    plugins = load_plugins()
    tft = plugins.trainer("tft")
    assert isinstance(tft, Trainer)
    assert tft.model_type == "tft"
    # an SDK trainer like a third-party one: the core's search runs it
    assert isinstance(tft, SearchTrainer) and is_sdk_trainer(tft.sdk)
    assert plugins.trainer("lgbm").model_type == "lightgbm"
    assert "builtin-tft" in {p.name for p in plugins.info()}
    assert not [f for f in plugins.failures if f.name == "builtin-tft"]


_PROBE = textwrap.dedent(
    """
    import json
    import numpy as np
    from autoopt.errors import PluginError
    from autoopt.plugins import load_plugins

    plugins = load_plugins()
    out = {"failures_at_load": [f.name for f in plugins.failures]}
    try:
        plugins.trainer("tft")  # torch is imported here, on first use, not when plugins load
        out["tft"] = "loaded"
    except PluginError as exc:
        out["tft"] = str(exc)
    out["failures"] = [f.name for f in plugins.failures]
    lgbm = plugins.trainer("lgbm")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(np.int8)
    model = lgbm.fit(X, y, lgbm.default_params(300) | {"num_boost_round": 20}, ["a", "b", "c"])
    proba = model.predict_proba(X)
    out["lgbm_accuracy"] = float(np.mean((proba > 0.5) == y))
    print(json.dumps(out))
    """
)


def test_broken_torch_is_a_plugin_error_while_lightgbm_still_trains(tmp_path: Path) -> None:
    # a real broken environment: a `torch` package first on sys.path whose import fails
    fake = tmp_path / "shadow" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        'raise ImportError("libtorch_cpu.so: cannot open shared object file")\n'
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(fake.parent)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    assert out["failures_at_load"] == []  # registering the trainer imported no torch
    assert "builtin-tft" in out["failures"]
    message = out["tft"]
    assert message != "loaded"
    assert "builtin-tft" in message
    assert "cannot import PyTorch" in message
    assert "libtorch_cpu.so: cannot open shared object file" in message
    assert out["lgbm_accuracy"] > 0.7
