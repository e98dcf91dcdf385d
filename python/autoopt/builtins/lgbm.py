"""The ``builtin-lgbm`` entry point: registers the LightGBM trainer as light metadata.

The trainer (`autoopt.builtins.lgbm_trainer`, which imports lightgbm and optuna) is imported the
first time the ``lgbm`` trainer is used, so listing plugins, an idle service or a CLI verb that
trains nothing never pays for them. Importing a name of the trainer module from here
(``from autoopt.builtins.lgbm import LightGBMTrainer``) still works and imports it then.
"""

from __future__ import annotations

from typing import Any

from autoopt.plugins import LazyComponent, hookimpl

LGBM = LazyComponent(
    name="lgbm",
    target="autoopt.builtins.lgbm_trainer:LightGBMTrainer",
    requires=("lightgbm", "optuna"),
    needs="LightGBM",
    install="pip install autoopt",
    metadata={"model_type": "lightgbm"},
)


@hookimpl
def autoopt_register_trainers() -> list[object]:
    return [LGBM]


def __getattr__(name: str) -> Any:
    """``autoopt.builtins.lgbm.X`` for names of the trainer module, imported on first access."""
    if name.startswith("__"):
        raise AttributeError(name)
    from autoopt.builtins import lgbm_trainer

    try:
        return getattr(lgbm_trainer, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
