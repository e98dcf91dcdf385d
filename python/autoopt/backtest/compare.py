"""Is any retraining policy really better than not retraining? Paired tests of the pooled paths.

Why these tests: two policies trade the same bars, so their returns are paired and strongly
correlated; a test that ignores the pairing (or the serial dependence of per-bar returns) is far
too wide or too narrow. Each policy is compared with each baseline (``never``, ``nightly``) on
the bars both pooled paths have:

- the annualised Sharpe difference ``SR(policy) - SR(baseline)``;
- a paired circular block-bootstrap percentile CI of it (`autoopt.ab.stats.bootstrap_sharpe_diff`
  with ``paired=True``): a resample takes the same rows of both series, in circular blocks of
  ``block`` consecutive bars so that serial dependence survives; the default block length is
  ``round(n ** (1/3))`` for ``n`` paired bars, the rate that minimises the bootstrap's error for
  variance-type statistics (Hall, Horowitz & Jing 1995);
- the Jobson-Korkie test with Memmel's correction (`autoopt.ab.stats.jobson_korkie_memmel`);
- Holm's step-down correction over every pairwise p-value of the run, since with K policies and
  two baselines some pair would look significant by luck.

A verdict is ``better`` (``worse``) only when the Holm-adjusted p is below ``1 - level`` AND
the bootstrap CI lies wholly above (below) 0; otherwise ``indistinguishable``. A pair whose
test is undefined (a constant return series, fewer than 3 common bars) is ``indistinguishable``
with p = 1 and NaN figures, and the summary says so.

The best policy (highest pooled Sharpe) also gets its Deflated Sharpe Ratio for having been
picked among K = all policies compared (`autoopt.validation.dsr`): the probability that its
Sharpe beats what the best of K skill-less policies would show by luck. Everything is
deterministic given ``seed`` (every pair's bootstrap uses it: common random numbers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from autoopt.ab.stats import bootstrap_sharpe_diff, jobson_korkie_memmel
from autoopt.backtest.metrics import pooled_path, pooled_periods_per_year
from autoopt.backtest.result import Comparison, PairwiseTest, PolicyResult
from autoopt.errors import DataError
from autoopt.validation.dsr import deflated_sharpe_from_returns, null_sharpe_variance
from autoopt.validation.metrics import sharpe_ratio

DEFAULT_BASELINES = ("never", "nightly")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order: the i-th smallest p times
    ``m - i + 1`` (i from 1), made non-decreasing along the sorted order, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return []
    if not (np.isfinite(p) & (p >= 0) & (p <= 1)).all():
        raise DataError(f"Holm's correction needs p-values in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (p.size - np.arange(p.size))
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    out = np.empty_like(p)
    out[order] = adjusted
    return out.tolist()


def default_block(n: int) -> int:
    """Block length of the bootstrap for ``n`` paired bars: ``round(n ** (1/3))``, at least 1."""
    return max(1, round(n ** (1.0 / 3.0)))


class _Raw:
    """One pair's figures before Holm's correction."""

    def __init__(self, policy: str, baseline: str) -> None:
        self.policy, self.baseline = policy, baseline
        self.sharpe_diff = self.ci_low = self.ci_high = self.z = math.nan
        self.p = 1.0
        self.untestable = ""


def _pair(
    policy: str,
    baseline: str,
    pooled: dict[str, tuple[np.ndarray, np.ndarray, float]],
    level: float,
    n_boot: int,
    block: int | None,
    seed: int,
) -> _Raw:
    raw = _Raw(policy, baseline)
    ts_p, r_p, ppy_p = pooled[policy]
    ts_b, r_b, ppy_b = pooled[baseline]
    _, ip, ib = np.intersect1d(ts_p, ts_b, assume_unique=True, return_indices=True)
    a, b = r_b[ib], r_p[ip]
    ppy = max(ppy_p, ppy_b)
    if a.size < 3:
        raw.untestable = f"only {a.size} common bars"
        return raw
    raw.sharpe_diff = sharpe_ratio(b, ppy) - sharpe_ratio(a, ppy)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        raw.untestable = "a constant return series"
        return raw
    if np.array_equal(a, b):
        raw.untestable = "both traded exactly the same way on every common bar"
        return raw
    try:
        jk = jobson_korkie_memmel(a, b)
    except DataError as exc:  # e.g. perfectly correlated with equal Sharpe ratios
        raw.untestable = f"no Jobson-Korkie test ({exc})"
        return raw
    raw.z, raw.p = jk.z, jk.p_value
    blk = default_block(a.size) if block is None else min(block, a.size)
    try:
        ci = bootstrap_sharpe_diff(
            a, b, n_boot=n_boot, level=level, seed=seed, paired=True, block=blk
        )
    except DataError as exc:  # too discrete for a bootstrap: the test stands, the CI does not
        raw.untestable = f"no bootstrap interval ({exc})"
        return raw
    scale = math.sqrt(ppy)
    raw.ci_low, raw.ci_high = ci.ci_low * scale, ci.ci_high * scale
    return raw


def _verdict(raw: _Raw, p_adjusted: float, alpha: float) -> str:
    if p_adjusted < alpha and raw.ci_low > 0:
        return "better"
    if p_adjusted < alpha and raw.ci_high < 0:
        return "worse"
    return "indistinguishable"


def _pct(level: float) -> str:
    return f"{level * 100:g}%"


def _sentence(t: PairwiseTest, level: float) -> str:
    verb = "beats" if t.verdict == "better" else "does worse than"
    return (
        f"{t.policy} {verb} {t.baseline} after costs: Sharpe {t.sharpe_diff:+.2f} a year "
        f"({_pct(level)} CI {t.ci_low:+.2f} to {t.ci_high:+.2f}, Holm-adjusted p = "
        f"{t.p_adjusted:.3g})."
    )


def _summary(
    tests: list[PairwiseTest],
    raws: list[_Raw],
    baselines: list[str],
    k: int,
    level: float,
    best: str,
    best_sharpe: float,
    dsr: float,
) -> list[str]:
    lines = [_sentence(t, level) for t in tests if t.verdict != "indistinguishable"]
    if not baselines:
        lines.append(
            f"None of the baselines was backtested among the {k} policies: no pairwise tests."
        )
    for base in baselines:
        if not any(t.baseline == base and t.verdict != "indistinguishable" for t in tests):
            lines.append(
                f"No policy is distinguishable from {base} after costs ({k} policies compared)."
            )
    lines += [
        f"{r.policy} against {r.baseline} could not be tested: {r.untestable}."
        for r in raws
        if r.untestable
    ]
    if best:
        dsr_text = "undefined (too few bars)" if math.isnan(dsr) else f"{dsr:.2f}"
        lines.append(
            f"Highest pooled Sharpe: {best} ({best_sharpe:.2f} a year); its deflated Sharpe "
            f"for having compared {k} policies is {dsr_text} (the probability that its edge is "
            "not luck)."
        )
    return lines


def _deflated(returns: np.ndarray, k: int) -> float:
    try:
        return deflated_sharpe_from_returns(returns, k, null_sharpe_variance(returns))
    except DataError:  # fewer than 4 bars, or moments that leave the PSR undefined
        return math.nan


def compare_policies(
    results: Sequence[PolicyResult],
    baselines: Sequence[str] = DEFAULT_BASELINES,
    level: float = 0.95,
    n_boot: int = 2000,
    block: int | None = None,
    seed: int = 0,
) -> Comparison:
    """Each policy against each baseline present in ``results`` (not itself, and a pair only
    once), paired on the common bars of their pooled paths (see the module doc)."""
    if not 0.0 < level < 1.0:
        raise DataError(f"level must be in (0, 1), got {level}")
    if block is not None and block < 1:
        raise DataError(f"block must be >= 1 bar, got {block}")
    names = [r.policy for r in results]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"policies compared twice: {dupes}")
    pooled: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    for r in results:
        ts, rets, _ = pooled_path(r.paths)
        pooled[r.policy] = (ts, rets, pooled_periods_per_year(r.paths))
    present = [b for b in dict.fromkeys(baselines) if b in pooled]
    seen: set[frozenset[str]] = set()
    raws: list[_Raw] = []
    for base in present:
        for name in names:
            key = frozenset((name, base))
            if name == base or key in seen:
                continue
            seen.add(key)
            raws.append(_pair(name, base, pooled, level, n_boot, block, seed))
    adjusted = holm([r.p for r in raws])
    alpha = 1.0 - level
    tests = [
        PairwiseTest(
            policy=r.policy,
            baseline=r.baseline,
            sharpe_diff=r.sharpe_diff,
            ci_low=r.ci_low,
            ci_high=r.ci_high,
            jkm_z=r.z,
            jkm_p=r.p,
            p_adjusted=p_adj,
            verdict=_verdict(r, p_adj, alpha),  # type: ignore[arg-type]
        )
        for r, p_adj in zip(raws, adjusted, strict=True)
    ]
    k = len(results)
    best, best_sharpe, dsr = "", math.nan, math.nan
    if pooled:
        sharpes = {n: sharpe_ratio(v[1], v[2]) for n, v in pooled.items()}
        best = max(names, key=lambda n: sharpes[n])
        best_sharpe = sharpes[best]
        dsr = _deflated(pooled[best][1], k)
    return Comparison(
        tests=tests,
        level=level,
        k_policies=k,
        best_policy=best,
        best_deflated_sharpe=dsr,
        summary=_summary(tests, raws, present, k, level, best, best_sharpe, dsr),
    )


__all__ = ["DEFAULT_BASELINES", "compare_policies", "default_block", "holm"]
