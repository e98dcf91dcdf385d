"""Drift kernels beside the library a user would otherwise call, one group per comparison.

Run: ``python -m pytest benches/bench_drift.py --benchmark-only --benchmark-columns=min,median``
(the native side once pinned to one thread, once on all: ``AUTOOPT_THREADS``), or as part of
``make bench-report`` (`WORKLOADS`, per-core ratios in benches/RESULTS.md). Every peer runs on
one thread (river is pure Python; scipy's ks_2samp and the NumPy PSI do not split work).

- ADWIN / Page-Hinkley ``update_many`` vs river's detector fed one value at a time (the only
  way river consumes a stream), 100k values each side.
- KS on 1M vs 1M values vs ``scipy.stats.ks_2samp(method="asymp")``: no-drift samples (the
  common monitoring case) and shifted samples (p-value from the exact Smirnov sum).
- PSI on 1M vs 1M values vs the NumPy implementation (quantile edges + two histograms).
"""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import pytest
from river import drift as river_drift
from scipy import stats

from autoopt.drift import ADWIN, PageHinkley, ks_2samp, psi
from percore import Workload, pinned

N_STREAM = 100_000
N_SAMPLE = 1_000_000


def make_stream() -> np.ndarray:
    rng = np.random.default_rng(0)
    third = N_STREAM // 3
    return np.concatenate(
        [rng.normal(0, 1, third), rng.normal(1.0, 1, third), rng.normal(0, 2, N_STREAM - 2 * third)]
    )


def make_samples() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    ref = rng.normal(size=N_SAMPLE)
    same = rng.normal(size=N_SAMPLE)
    shifted = rng.normal(0.01, 1.0, size=N_SAMPLE)
    return ref, same, shifted


@pytest.fixture(scope="module")
def stream() -> np.ndarray:
    return make_stream()


@pytest.fixture(scope="module")
def samples() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return make_samples()


def _river_loop(detector: object, xs: list[float]) -> list[int]:
    hits = []
    for i, x in enumerate(xs):
        detector.update(x)  # type: ignore[attr-defined]
        if detector.drift_detected:  # type: ignore[attr-defined]
            hits.append(i)
    return hits


def _stream_and_list() -> tuple[np.ndarray, list[float]]:
    s = make_stream()
    return s, s.tolist()


def _same_hits(data: object, ours: np.ndarray, peer: list[int]) -> None:
    assert ours.tolist() == peer


def _same_statistic(data: object, ours: object, peer: object) -> None:
    assert ours.statistic == peer.statistic  # type: ignore[attr-defined]


def _psi_close(data: object, ours: float, peer: float) -> None:
    assert ours == pytest.approx(peer, rel=1e-12)


WORKLOADS = [
    Workload(
        name="ADWIN, 100k values",
        peer_name=f"river {version('river')} ADWIN, one update per value",
        peer_threads="1 (pure Python)",
        setup=_stream_and_list,
        ours=lambda d: ADWIN().update_many(d[0]),
        peer=lambda d: _river_loop(river_drift.ADWIN(), d[1]),
        goal=20.0,
        check=_same_hits,
    ),
    Workload(
        name="Page-Hinkley, 100k values",
        peer_name=f"river {version('river')} PageHinkley, one update per value",
        peer_threads="1 (pure Python)",
        setup=_stream_and_list,
        ours=lambda d: PageHinkley().update_many(d[0]),
        peer=lambda d: _river_loop(river_drift.PageHinkley(), d[1]),
        goal=50.0,
        check=_same_hits,
    ),
    Workload(
        name="KS 1M vs 1M, no drift",
        peer_name=f"scipy {version('scipy')} ks_2samp(method='asymp')",
        peer_threads="1 (scipy sorts on one thread)",
        setup=lambda: make_samples()[:2],
        ours=lambda d: ks_2samp(d[0], d[1]),
        peer=lambda d: stats.ks_2samp(d[0], d[1], method="asymp"),
        goal=10.0,
        check=_same_statistic,
    ),
    Workload(
        name="KS 1M vs 1M, shifted (Smirnov p-value)",
        peer_name=f"scipy {version('scipy')} ks_2samp(method='asymp')",
        peer_threads="1 (scipy sorts on one thread)",
        setup=lambda: make_samples()[::2],
        ours=lambda d: ks_2samp(d[0], d[1]),
        peer=lambda d: stats.ks_2samp(d[0], d[1], method="asymp"),
        goal=10.0,
        check=_same_statistic,
    ),
    Workload(
        name="PSI 1M vs 1M, 10 bins",
        peer_name=f"NumPy {np.__version__} (quantile edges + two histograms)",
        peer_threads="1 (NumPy, no threads)",
        setup=lambda: make_samples()[::2],
        ours=lambda d: psi(d[0], d[1]),
        peer=lambda d: _numpy_psi(d[0], d[1]),
        goal=3.0,
        check=_psi_close,
    ),
]


@pytest.mark.parametrize("threads", [1, None], ids=["1-thread", "all-threads"])
def test_adwin_native(benchmark, stream: np.ndarray, threads: int | None) -> None:
    benchmark.group = "ADWIN, 100k values"
    with pinned(threads):
        hits = benchmark(lambda: ADWIN().update_many(stream))
    assert len(hits) > 0


def test_adwin_river(benchmark, stream: np.ndarray) -> None:
    benchmark.group = "ADWIN, 100k values"
    xs = stream.tolist()
    hits = benchmark.pedantic(lambda: _river_loop(river_drift.ADWIN(), xs), rounds=3, iterations=1)
    assert hits == ADWIN().update_many(stream).tolist()


@pytest.mark.parametrize("threads", [1, None], ids=["1-thread", "all-threads"])
def test_page_hinkley_native(benchmark, stream: np.ndarray, threads: int | None) -> None:
    benchmark.group = "PageHinkley, 100k values"
    with pinned(threads):
        benchmark(lambda: PageHinkley().update_many(stream))


def test_page_hinkley_river(benchmark, stream: np.ndarray) -> None:
    benchmark.group = "PageHinkley, 100k values"
    xs = stream.tolist()
    hits = benchmark.pedantic(lambda: _river_loop(river_drift.PageHinkley(), xs), rounds=3, iterations=1)
    assert hits == PageHinkley().update_many(stream).tolist()


@pytest.mark.parametrize("threads", [1, None], ids=["1-thread", "all-threads"])
def test_ks_native(benchmark, samples, threads: int | None) -> None:
    ref, same, _ = samples
    benchmark.group = "KS 1M vs 1M, no drift"
    with pinned(threads):
        r = benchmark(lambda: ks_2samp(ref, same))
    assert r.statistic == stats.ks_2samp(ref, same, method="asymp").statistic


def test_ks_scipy(benchmark, samples) -> None:
    ref, same, _ = samples
    benchmark.group = "KS 1M vs 1M, no drift"
    benchmark.pedantic(lambda: stats.ks_2samp(ref, same, method="asymp"), rounds=3, iterations=1)


@pytest.mark.parametrize("threads", [1, None], ids=["1-thread", "all-threads"])
def test_ks_native_shifted(benchmark, samples, threads: int | None) -> None:
    ref, _, shifted = samples
    benchmark.group = "KS 1M vs 1M, shifted (Smirnov p-value)"
    with pinned(threads):
        benchmark(lambda: ks_2samp(ref, shifted))


def test_ks_scipy_shifted(benchmark, samples) -> None:
    ref, _, shifted = samples
    benchmark.group = "KS 1M vs 1M, shifted (Smirnov p-value)"
    benchmark.pedantic(lambda: stats.ks_2samp(ref, shifted, method="asymp"), rounds=3, iterations=1)


def _numpy_psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    edges = np.quantile(reference, np.linspace(0, 1, bins + 1))
    edges[0], edges[-1] = -np.inf, np.inf
    p = np.clip(np.histogram(reference, edges)[0] / len(reference), 1e-4, None)
    q = np.clip(np.histogram(current, edges)[0] / len(current), 1e-4, None)
    return float(np.sum((q - p) * np.log(q / p)))


@pytest.mark.parametrize("threads", [1, None], ids=["1-thread", "all-threads"])
def test_psi_native(benchmark, samples, threads: int | None) -> None:
    ref, _, shifted = samples
    benchmark.group = "PSI 1M vs 1M"
    with pinned(threads):
        v = benchmark(lambda: psi(ref, shifted))
    assert v == pytest.approx(_numpy_psi(ref, shifted), rel=1e-12)


def test_psi_numpy(benchmark, samples) -> None:
    ref, _, shifted = samples
    benchmark.group = "PSI 1M vs 1M"
    benchmark.pedantic(lambda: _numpy_psi(ref, shifted), rounds=5, iterations=1)
