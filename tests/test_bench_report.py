"""`make bench-report`: the generated RESULTS.md section, what it keeps, and the regression check;
the per-core harness pins the native side as it says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from autoopt import _native
from autoopt.features import sma

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return _load("bench_report", ROOT / "scripts" / "bench_report.py")


@pytest.fixture(scope="module")
def percore() -> ModuleType:
    return _load("percore", ROOT / "benches" / "percore.py")


HAND = """# Benchmark results

## Lean processes

Issue 23 table | before | after |

## Retrain and policy backtest

Maintained by hand: nightly retrain 7.8 min -> 3.9 min.
"""


def _row(report: ModuleType, key: str, r1: float, rall: float) -> object:
    name, peer = key.split(" | ")
    return report.Row(
        key=key, workload=name, peer=f"{peer} 1.0", peer_threads="1", ours_1_ms=10.0, ours_all_ms=6.0,
        all_threads=2, peer_ms=10.0 * r1, ratio_1=r1, ratio_all=rall, goal=1.5, rounds=5,
    )


def test_section_replaces_only_itself_and_keeps_hand_sections(report: ModuleType) -> None:
    rows = [_row(report, "fused 8 indicators, 10M bars | TA-Lib", 1.6, 2.5)]
    first = report.splice(HAND, report.render(rows, "CPU X, 2 cores", "0.1", "0.2", "today"))
    assert first.startswith("# Benchmark results\n")
    assert "## Lean processes" in first and "Maintained by hand: nightly retrain 7.8 min" in first
    assert first.index(report.BEGIN) < first.index("## Lean processes")
    assert "| 1.60x | 2.50x | >= 1.5x | yes |" in first
    rows2 = [_row(report, "fused 8 indicators, 10M bars | TA-Lib", 1.2, 2.0)]
    second = report.splice(first, report.render(rows2, "CPU X, 2 cores", "0.1", "0.2", "later"))
    assert second.count(report.BEGIN) == 1 and second.count(report.END) == 1
    assert "| 1.20x | 2.00x | >= 1.5x | **no** |" in second and "1.60x" not in second
    assert second.replace(report.render(rows2, "CPU X, 2 cores", "0.1", "0.2", "later").rstrip("\n"), "") == \
        first.replace(report.render(rows, "CPU X, 2 cores", "0.1", "0.2", "today").rstrip("\n"), "")


def test_ratio_drop_over_20_percent_is_reported(report: ModuleType) -> None:
    old = [_row(report, "a | TA-Lib", 2.0, 4.0), _row(report, "b | mmh3", 40.0, 60.0)]
    before = report.previous_ratios(report.render(old, "m", "0", "0", "t"))
    assert before["a | TA-Lib"] == {"ratio_1": 2.0, "ratio_all": 4.0}
    new = [_row(report, "a | TA-Lib", 1.62, 3.1), _row(report, "b | mmh3", 41.0, 60.0), _row(report, "c | x", 1.0, 1.0)]
    lost = report.regressions(new, before)
    assert len(lost) == 1 and lost[0].startswith("REGRESSION a | TA-Lib (all threads): 3.10x, was 4.00x")
    assert report.previous_ratios(HAND) == {}


def test_bad_arguments_are_one_line_errors(report: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert report.main(["--rounds", "3"]) == 2
    assert report.main(["--only", "no such workload"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: --rounds must be >= 5") and err[1].startswith("error: no workload matches")


def test_harness_pins_one_thread_then_all(percore: ModuleType) -> None:
    seen: list[int] = []
    x = np.arange(1000.0)

    def ours(data: np.ndarray) -> np.ndarray:
        seen.append(_native.threads())
        return sma(data, 5)

    w = percore.Workload(name="sma", peer_name="numpy", peer_threads="1", setup=lambda: x,
                         ours=ours, peer=lambda d: np.convolve(d, np.ones(5) / 5, "valid"), goal=1.0)
    before = _native.threads()
    m = percore.measure(w, rounds=5)
    assert set(seen) == {1, percore.all_cores()} and seen.count(1) >= 5
    assert m.rounds == 5 and m.ours_1 > 0 and m.peer > 0 and m.ratio_1 == m.peer / m.ours_1
    assert _native.threads() == before  # the pin is lifted afterwards
