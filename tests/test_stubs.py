"""The hand-written `_native.pyi` stub matches the compiled module (mypy.stubtest)."""

from __future__ import annotations

import subprocess
import sys


def test_native_stub_matches_runtime() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "autoopt._native"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout
