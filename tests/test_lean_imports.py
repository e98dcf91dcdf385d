"""Lean processes: each autoopt process imports only the libraries its job uses (issue 23).

Every check runs the real entry point (the CLI's `main`, `ModelWatcher.open`) in a fresh
subprocess with the default configuration and the embedded nats-server, then reads that
process's ``sys.modules`` (dumped at exit by a small runner). Importing PyTorch alone costs a
process about 860 MB and 2 s; a LightGBM-only deployment must never pay it, and commands that
train nothing must not pay for lightgbm, optuna, scipy or ccxt either.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HEAVY = ("torch", "safetensors", "lightgbm", "optuna", "scipy", "ccxt", "plotly", "skfolio")
"""Libraries that cost a process hundreds of milliseconds or megabytes to import."""

NOT_IN_A_LIGHTGBM_PROCESS = ("torch", "safetensors", "ccxt", "plotly", "skfolio")

RUNNER = textwrap.dedent(
    """
    import atexit, json, os, sys

    def _dump():
        with open(os.environ["LEAN_MODULES_OUT"], "w") as f:
            json.dump(sorted(sys.modules), f)

    atexit.register(_dump)
    if sys.argv[1] == "--code":
        exec(sys.argv[2])
    else:
        from autoopt.cli import main
        main(sys.argv[1:])
    """
)

EVERY_HELP = textwrap.dedent(
    """
    import typer.main
    from autoopt.cli import app, main

    def paths(command, prefix):
        yield prefix
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from paths(sub, prefix + [name])

    seen = []
    for path in list(paths(typer.main.get_command(app), []))[1:] + [[]]:
        try:
            main(path + ["--help"])
        except SystemExit as exc:
            assert exc.code in (0, None), (path, exc.code)
        seen.append(" ".join(path))
    print("HELPS", len(seen))
    """
)

WATCH_AND_PREDICT = textwrap.dedent(
    """
    import asyncio, json
    import numpy as np
    from autoopt.client import ModelWatcher
    from autoopt.config import load_config

    async def follow():
        watcher = await ModelWatcher.open("GOOG", load_config(None))
        try:
            model = watcher.current
            assert model is not None, "no champion"
            X = np.random.default_rng(0).normal(size=(8, len(model.feature_names)))
            proba = watcher.predict_proba(X)
            print("WATCHER", json.dumps({"release": model.release_id, "n": int(proba.size)}))
        finally:
            await watcher.close()

    asyncio.run(follow())
    """
)

PERMISSIVE_GATE = ("[pipeline.gate]\ndsr_threshold = 0.0\nmin_trades = 0\nmargin = 0.0\n"
                   "max_pbo = 1.0\nholdout_min_sharpe = -inf\n")
"""Lets a two-trial retrain on bundled data release a champion for the watcher to follow."""


def _env(work: Path, modules_out: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOOPT_")}
    env.update(
        AUTOOPT_DATA_DIR=str(work / "data"),
        LEAN_MODULES_OUT=str(modules_out),
        PYTHONUNBUFFERED="1",
    )
    if (work / "autoopt.toml").exists():
        env["AUTOOPT_CONFIG"] = str(work / "autoopt.toml")
    env.update(extra or {})
    return env


def _run(work: Path, *args: str, timeout: float = 240, extra_env: dict[str, str] | None = None,
         ) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the runner with ``args`` in ``work``; the process result and its sys.modules."""
    runner = work / "lean_runner.py"
    runner.write_text(RUNNER)
    out = work / f"modules-{time.monotonic_ns()}.json"
    proc = subprocess.run(
        [sys.executable, str(runner), *args], cwd=work, env=_env(work, out, extra_env),
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    modules = set(json.loads(out.read_text())) if out.exists() else set()
    return proc, modules


def _heavy(modules: set[str], names: tuple[str, ...] = HEAVY) -> list[str]:
    return [n for n in names if n in modules]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """A data dir where a real `autoopt retrain` (LightGBM, the default model, bundled data)
    released a champion; and the modules that retrain process imported."""
    work = tmp_path_factory.mktemp("lean-trained")
    (work / "autoopt.toml").write_text(PERMISSIVE_GATE)
    proc, modules = _run(work, "retrain", "--source", "bundled:GOOG", "--trials", "2", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "yes" in proc.stdout  # deployed: a champion exists for the watcher
    return work, modules


def test_help_of_every_command_imports_no_heavy_library(tmp_path: Path) -> None:
    proc, modules = _run(tmp_path, "--code", EVERY_HELP, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert int(proc.stdout.rsplit("HELPS", 1)[1].split()[0]) > 20  # every verb, group and sub-verb
    assert _heavy(modules) == []


@pytest.mark.parametrize("verb", ["version", "plugins"])
def test_version_and_plugins_import_no_heavy_library(tmp_path: Path, verb: str) -> None:
    proc, modules = _run(tmp_path, verb)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _heavy(modules) == []
    if verb == "plugins":  # listed from metadata: every trainer shows, none was imported
        assert "lgbm" in proc.stdout and "tft" in proc.stdout


def test_idle_serve_with_the_default_config_imports_no_heavy_library(tmp_path: Path) -> None:
    port = _free_port()
    out = tmp_path / "serve-modules.json"
    runner = tmp_path / "lean_runner.py"
    runner.write_text(RUNNER)
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, str(runner), "serve", "--port", str(port)], cwd=tmp_path,
            env=_env(tmp_path, out), stdin=subprocess.DEVNULL, stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        ready = False
        while not ready:
            assert proc.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "serve not ready: " + log_path.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:  # noqa: S310
                    ready = r.status == 200
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    modules = set(json.loads(out.read_text()))
    assert "autoopt.service.app" in modules  # it really served
    assert _heavy(modules) == []


def test_retrain_with_lightgbm_never_imports_torch(trained: tuple[Path, set[str]]) -> None:
    _, modules = trained
    assert "lightgbm" in modules and "optuna" in modules  # it really trained and tuned
    assert _heavy(modules, NOT_IN_A_LIGHTGBM_PROCESS) == []


def test_model_watcher_on_a_lightgbm_release_imports_no_heavy_library(
    trained: tuple[Path, set[str]],
) -> None:
    """The engine predicts through LightGBM's C library: not even the lightgbm package (with
    its scipy, pandas and pyarrow) is imported, only what loading the release needs."""
    work, _ = trained
    proc, modules = _run(work, "--code", WATCH_AND_PREDICT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"n": 8' in proc.stdout
    assert "autoopt.builtins.lgbm_native" in modules  # it really predicted with the model
    assert _heavy(modules, (*NOT_IN_A_LIGHTGBM_PROCESS, "optuna", "lightgbm", "scipy",
                            "pandas", "pyarrow")) == []


@pytest.mark.parametrize(
    "args", [("replay", "--decisions", "-q"), ("log", "replay", "--limit", "50")],
    ids=["replay-decisions", "log-replay"],
)
def test_replays_import_no_heavy_library(trained: tuple[Path, set[str]], args: tuple[str, ...]) -> None:
    work, _ = trained
    proc, modules = _run(work, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "digest" in proc.stdout or "model.released" in proc.stdout
    assert _heavy(modules) == []


TFT_ON_FIRST_USE = textwrap.dedent(
    """
    import sys
    from autoopt.plugins import load_plugins
    from autoopt.plugins.interfaces import Trainer

    plugins = load_plugins()
    before = "torch" in sys.modules
    listed = plugins.components("trainer")["tft"].model_type
    tft = plugins.trainer("tft")
    print("TFT", before, listed, isinstance(tft, Trainer), "torch" in sys.modules)
    """
)


def test_tft_trainer_imports_torch_on_first_use_only(tmp_path: Path) -> None:
    proc, _ = _run(tmp_path, "--code", TFT_ON_FIRST_USE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TFT False tft True True" in proc.stdout


def test_missing_torch_is_one_clear_line_when_tft_is_asked_for(tmp_path: Path) -> None:
    # torch "not installed": a None entry in sys.modules is what Python's import system treats
    # as an absent module (find_spec answers None, import raises ModuleNotFoundError)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None\n")
    pythonpath = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc, modules = _run(
        tmp_path, "retrain", "--source", "bundled:GOOG", "--models", "tft", "--trials", "2", "-q",
        extra_env={"PYTHONPATH": pythonpath},
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "'tft'" in lines[0] and "PyTorch" in lines[0] and "torch" in lines[0]
    assert "pip install" in lines[0]
    assert "lightgbm" not in modules  # refused before any work started


EVERY_MODULE = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    import autoopt

    # a __main__ runs the CLI when imported; autoopt.tft's modules are the TFT trainer itself
    # (PyTorch code), reached only through its lazy registration in autoopt.tft.plugin
    names = [m.name for m in pkgutil.walk_packages(autoopt.__path__, "autoopt.")
             if not m.name.endswith("__main__")
             and (not m.name.startswith("autoopt.tft.") or m.name == "autoopt.tft.plugin")]
    for name in names:
        importlib.import_module(name)
    print("MODULES", len(names))
    """
)


def test_importing_any_autoopt_module_imports_no_feature_library(tmp_path: Path) -> None:
    """The rule for what later issues add (reports, portfolio, backtest, dashboard): plotly,
    skfolio, torch, lightgbm or ccxt are imported where a feature is used, never by importing a
    module, so a process that does not use the feature does not pay for it."""
    proc, modules = _run(tmp_path, "--code", EVERY_MODULE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert int(proc.stdout.rsplit("MODULES", 1)[1].split()[0]) > 50
    assert _heavy(modules, ("torch", "safetensors", "lightgbm", "ccxt", "plotly", "skfolio")) == []
