"""Built-in validator: purged walk-forward CV scoring after costs (`autoopt.pipeline.scoring`)."""

from __future__ import annotations

from autoopt.pipeline.scoring import PurgedCVValidator
from autoopt.plugins import hookimpl


@hookimpl
def autoopt_register_validators() -> list[object]:
    return [PurgedCVValidator()]
