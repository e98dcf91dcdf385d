"""Optional parts of autoopt come with extras; using one whose extra is missing is one line
that names the extra to install (``pip install 'autoopt[tft]'``, ``'autoopt[exchanges]'``).

"Not installed" is made real in a fresh interpreter: ``sys.modules[name] = None`` is Python's
own marker for a module that cannot be imported (``import`` raises ImportError and
``importlib.util.find_spec`` returns None), exactly what an environment without the extra shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autoopt.builtins.ccxt_source import CcxtSource
from autoopt.errors import PluginError
from autoopt.plugins import load_plugins


def _autoopt_without(module: str, args: list[str], data_dir: Path) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules[{module!r}] = None
        sys.argv = ["autoopt", *{args!r}]
        from autoopt.cli import main
        main()
        """
    )
    env = dict(os.environ, AUTOOPT_DATA_DIR=str(data_dir), COLUMNS="300")
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )


def test_tft_without_its_extra_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    listed = _autoopt_without("torch", ["plugins"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "trainer tft (missing: torch)" in " ".join(listed.stdout.split())

    proc = _autoopt_without(
        "torch",
        ["retrain", "--source", "bundled:GOOG", "--symbols", "GOOG", "--models", "tft"],
        tmp_path,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    [line] = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "model 'tft'" in line
    assert "pip install 'autoopt[tft]'" in line


def test_tft_component_without_torch_names_the_extra(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None
        from autoopt.errors import PluginError
        from autoopt.plugins import load_plugins
        try:
            load_plugins(entry_points=False).trainer("tft")
        except PluginError as exc:
            print(exc)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    [line] = proc.stdout.splitlines()
    assert "builtin-tft" in line and "PyTorch" in line
    assert line.endswith("Install it with: pip install 'autoopt[tft]'")


def test_ccxt_source_without_its_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    source = load_plugins(entry_points=False).data_source_for("ccxt:binance:BTC/USDT:1m")
    assert isinstance(source, CcxtSource)
    monkeypatch.setitem(sys.modules, "ccxt", None)
    with pytest.raises(PluginError) as err:
        source.load("ccxt:binance:BTC/USDT:1m")
    message = str(err.value)
    assert "\n" not in message
    assert "the ccxt data source needs ccxt" in message
    assert message.endswith("pip install 'autoopt[exchanges]'")
