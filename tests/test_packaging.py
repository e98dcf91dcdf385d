"""autoopt as an installed package: ``python -m autoopt`` is the CLI, and the version has one
source (the Rust workspace's Cargo.toml, which maturin gives the package) shared by the Python
package and its native extension. The clean-venv install from a built wheel is `.ci/wheel-check`.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import autoopt
from autoopt import _native

ROOT = Path(__file__).resolve().parents[1]


def test_one_version_for_the_package_and_its_native_extension() -> None:
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    version = cargo["workspace"]["package"]["version"]
    assert autoopt.__version__ == version
    assert _native.__version__ == version


def test_python_m_autoopt_runs_the_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "autoopt", "version"], capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"autoopt {autoopt.__version__} (native {_native.__version__})"
    helped = subprocess.run(
        [sys.executable, "-m", "autoopt", "--help"], capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert helped.returncode == 0, helped.stderr
    assert "retrain" in helped.stdout and "plugins" in helped.stdout
