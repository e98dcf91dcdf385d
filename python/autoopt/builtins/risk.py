"""The ``builtin-risk`` entry point: registers the stops-and-sizing risk tuner as light metadata.

The tuner (`autoopt.builtins.risk_tuner`, an Optuna search) is imported the first time the
``stops-sizing`` tuner is used, so processes that never tune risk never import optuna.
"""

from __future__ import annotations

from autoopt.plugins import LazyComponent, hookimpl

STOPS_SIZING = LazyComponent(
    name="stops-sizing",
    target="autoopt.builtins.risk_tuner:StopsSizingTuner",
    requires=("optuna",),
    needs="Optuna",
    install="pip install autoopt",
)


@hookimpl
def autoopt_register_risk_tuners() -> list[object]:
    return [STOPS_SIZING]
