"""Hook specifications: the contract between autoopt and its plugins.

A plugin is a module or object with functions marked `@hookimpl` whose names match the
specs below. Built-in plugins (the `plugins/` folder of the repository) register through the
`autoopt` entry-point group exactly like third-party ones, so nothing here is privileged.

Each `autoopt_register_*` hook returns a list of components; components are small objects
described by the protocols in `autoopt.plugins.interfaces` and looked up by their `name`. A
component whose module imports a heavy library (torch, lightgbm, optuna...) is returned as a
`autoopt.plugins.LazyComponent` instead: its name and metadata now, the object on first use,
so registering costs nothing (the built-in trainers do this; an instance works as before).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from autoopt.config import Config
    from autoopt.events import Event
    from autoopt.plugins.interfaces import (
        DataSource,
        DriftDetectorFactory,
        FeatureSet,
        RiskTuner,
        Trainer,
        Validator,
    )

PROJECT = "autoopt"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def autoopt_register_trainers() -> list[Trainer]:
    """Model trainers (e.g. LightGBM, TFT) this plugin provides."""


@hookspec
def autoopt_register_validators() -> list[Validator]:
    """Validators that score a trained model on leakage-free folds."""


@hookspec
def autoopt_register_risk_tuners() -> list[RiskTuner]:
    """Risk tuners (stop loss, sizing, drawdown limits, portfolio weights)."""


@hookspec
def autoopt_register_data_sources() -> list[DataSource]:
    """Bar data sources, each owning one URI scheme (``file``, ``ccxt``, ...)."""


@hookspec
def autoopt_register_feature_sets() -> list[FeatureSet]:
    """Named feature sets that turn bars into model inputs."""


@hookspec
def autoopt_register_drift_detectors() -> list[DriftDetectorFactory]:
    """Factories of streaming drift detectors (`DriftDetectorFactory`: ``name``, ``create``,
    ``from_bytes``) that ``policy.drift.detectors`` may name. The service and ``autoopt replay``
    resolve the configured ones once at start and hand them to the decision core; autoopt's
    own ADWIN and Page-Hinkley register here too (``builtin-drift``)."""


@hookspec
def autoopt_configure(config: Config) -> None:
    """Called once after the config is loaded, before any other hook."""


@hookspec
def autoopt_on_event(event: Event) -> list[Event] | None:
    """React to an event from the log; returned events are appended to the log."""


@hookspec
def autoopt_cli_commands() -> list[Any] | None:
    """Extra CLI commands as typer apps or functions, added under ``autoopt``."""
