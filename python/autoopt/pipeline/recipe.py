"""What a release records about how its inputs were made, so anyone can rebuild them from bars.

Why: an engine must predict with a release without re-implementing its features. The manifest
records the feature set's name, version and parameters, the label config and a lookback (how
many trailing bars one live prediction needs); `autoopt.client.Champion` rebuilds the features
from raw bars with them.

Lookback: a feature set may say it (``lookback()``); otherwise it is ``LOOKBACK_FACTOR`` times
its warm-up. The extra bars beyond the warm-up let recursive averages (EMA, Wilder's RSI/ATR)
forget their seed: after 10 x 50 bars an EMA(26)'s seed weighs (25/27)^450, about 1e-15, so a
prediction from the last ``lookback`` bars equals the one from the whole history to float
rounding.
"""

from __future__ import annotations

from typing import Any

import msgspec

LOOKBACK_FACTOR = 10


def feature_set_lookback(feature_set: Any) -> int:
    """Bars one prediction needs: the set's own ``lookback()``, else 10 x its warm-up (>= 1)."""
    own = getattr(feature_set, "lookback", None)
    if callable(own):
        return max(1, int(own()))
    return max(1, LOOKBACK_FACTOR * int(feature_set.warmup()))


def recipe_fields(label: Any, feature_set: Any) -> dict[str, Any]:
    """The manifest fields (`autoopt.registry.Manifest`) describing a release's inputs."""
    params = getattr(feature_set, "params", None)
    return {
        "feature_set": str(feature_set.name),
        "feature_set_version": str(getattr(feature_set, "version", "")),
        "feature_params": dict(params) if isinstance(params, dict) else {},
        "label": msgspec.to_builtins(label),
        "lookback": feature_set_lookback(feature_set),
    }


__all__ = ["LOOKBACK_FACTOR", "feature_set_lookback", "recipe_fields"]
