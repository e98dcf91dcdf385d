"""Confidence-based performance estimation (CBPE, as in NannyML): the champion's hit rate
estimated from its calibrated prediction confidence, before the outcomes arrive.

Why: labels come late (a trade's outcome is known when it closes, a daily label a day later),
while a shift that hurts the model often shows first in what it predicts. If the model's
probabilities are calibrated, a prediction made with probability c of being right is right with
probability c, so over n signals the expected hit rate is the mean of c and, the hits being
independent Bernoulli(cᵢ) given the predictions, its standard error is √(Σ cᵢ(1 − cᵢ))/n.

A signal's c is max(p, 1 − p) of its reported ``confidence`` p (a probability of the up move
or of the side taken: either way the probability that the side taken is right). The estimate
is compared with the release's cross-validated accuracy; ``z = (estimate − expected)/se``.
The limits are CBPE's own: it sees covariate shift through the confidences, not a change in
the relation between features and outcome (concept drift), which the live test and the
outcome-stream detectors cover once outcomes arrive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
import numpy as np


class CBPEEstimate(msgspec.Struct, frozen=True):
    estimate: float
    se: float
    n: int


def hit_probability(confidence: float) -> float:
    """The probability that the side taken is right, from a reported confidence."""
    c = min(max(float(confidence), 0.0), 1.0)
    return max(c, 1.0 - c)


def cbpe(confidences: Sequence[float] | np.ndarray) -> CBPEEstimate:
    """Estimated hit rate and its standard error from the signals' confidences."""
    c = np.asarray([hit_probability(x) for x in np.asarray(confidences, dtype=np.float64)
                    if math.isfinite(x)])
    if c.size == 0:
        return CBPEEstimate(math.nan, math.nan, 0)
    return CBPEEstimate(float(c.mean()), float(math.sqrt(np.sum(c * (1 - c))) / c.size),
                        int(c.size))


def from_sums(total: float, var_total: float, n: int) -> CBPEEstimate:
    """The same estimate from running sums (Σc, Σc(1−c), n): what the decision core keeps."""
    if n == 0:
        return CBPEEstimate(math.nan, math.nan, 0)
    return CBPEEstimate(total / n, math.sqrt(var_total) / n, n)


__all__ = ["CBPEEstimate", "cbpe", "from_sums", "hit_probability"]
