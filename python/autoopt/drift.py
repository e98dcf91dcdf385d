"""Drift statistics and detectors, computed in Rust (`autoopt._native`).

- `ks_2samp`: two-sample Kolmogorov-Smirnov test; statistic identical to SciPy's, p-value equal
  to `scipy.stats.ks_2samp(..., method="asymp")`.
- `psi` / `PSIMonitor`: Population Stability Index over reference-quantile bins.
- `ADWIN`, `PageHinkley`: the `river` detectors' semantics, defaults and detection indices.
- `CUSUM`: two-sided tabular CUSUM. `Welford`: mergeable running moments.

Every detector/monitor checkpoints with `to_bytes()` / `from_bytes()` (a versioned,
checksummed binary format; never pickle). Inputs are 1-D numeric arrays, sequences or polars
Series; contiguous float64 data is read without copying. NaN in the data raises
`autoopt.errors.DataError`.

`ADWIN_FACTORY` and `PAGE_HINKLEY_FACTORY` are the streaming detectors' factories
(`autoopt.plugins.interfaces.DriftDetectorFactory`): the ``builtin-drift`` plugin registers them
through the same hook as a third-party detector, and the decision core restores a checkpointed
detector through its factory's ``from_bytes``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from numpy.typing import ArrayLike

from autoopt import _native
from autoopt._native import ADWIN, CUSUM, PageHinkley, PSIMonitor, Welford


class KSResult(NamedTuple):
    """Result of `ks_2samp` (fields as in `scipy.stats.ks_2samp`)."""

    statistic: float
    pvalue: float
    statistic_location: float
    statistic_sign: int


def ks_2samp(reference: ArrayLike, current: ArrayLike) -> KSResult:
    """Two-sided two-sample KS test of `current` against `reference`.

    The statistic is max |F_ref - F_cur| over the pooled sample, exactly as SciPy computes it.
    The p-value uses SciPy's ``method="asymp"``: the two-sided one-sample Kolmogorov
    distribution ``kstwo.sf(D, round(n*m/(n+m)))`` (Simard & L'Ecuyer's method selection).
    Raises DataError for empty samples or NaN.
    """
    stat, pvalue, location, sign = _native.ks_2samp(reference, current)
    return KSResult(stat, pvalue, location, sign)


def ks_pvalue(statistic: float, n1: int, n2: int) -> float:
    """Two-sided asymptotic p-value of a KS statistic for sample sizes n1, n2 (as `ks_2samp`)."""
    return float(_native.ks_pvalue(statistic, n1, n2))


def psi(reference: ArrayLike, current: ArrayLike, bins: int = 10) -> float:
    """Population Stability Index of `current` against `reference`.

    Bin edges are the reference's quantiles at ``linspace(0, 1, bins + 1)`` (NumPy's default
    linear method) with the outer edges at -inf/+inf; values are counted with
    ``numpy.histogram`` semantics; each bin share is clipped below at 1e-4; the result is
    ``sum((q - p) * ln(q / p))`` with p the reference and q the current shares.
    """
    return float(_native.psi(reference, current, bins))


class NativeDetectorFactory:
    """A `DriftDetectorFactory` for one of the native streaming detectors (its class's keyword
    arguments are the params; its own ``to_bytes`` / ``from_bytes`` are the checkpoint)."""

    def __init__(self, name: str, cls: Any) -> None:
        self.name = name
        self._cls = cls

    def create(self, **params: Any) -> Any:
        return self._cls(**params)

    def from_bytes(self, data: bytes) -> Any:
        return self._cls.from_bytes(data)

    def __repr__(self) -> str:
        return f"NativeDetectorFactory({self.name!r})"


ADWIN_FACTORY = NativeDetectorFactory("adwin", ADWIN)
"""Params: ``delta`` (config ``adwin_delta``)."""
PAGE_HINKLEY_FACTORY = NativeDetectorFactory("page_hinkley", PageHinkley)
"""Params: ``min_instances``, ``delta``, ``threshold``, ``alpha`` (config ``page_hinkley_*``)."""
BUILTIN_STREAM_FACTORIES = (ADWIN_FACTORY, PAGE_HINKLEY_FACTORY)


__all__ = [
    "ADWIN",
    "ADWIN_FACTORY",
    "BUILTIN_STREAM_FACTORIES",
    "CUSUM",
    "KSResult",
    "NativeDetectorFactory",
    "PAGE_HINKLEY_FACTORY",
    "PSIMonitor",
    "PageHinkley",
    "Welford",
    "ks_2samp",
    "ks_pvalue",
    "psi",
]
