"""The hooks: one trainer, one feature set, one data source, one drift detector (imports are
light: numpy, polars)."""

from __future__ import annotations

from autoopt.plugins import hookimpl
from autoopt_example_plugin.drift import CusumFactory
from autoopt_example_plugin.features import ReturnsFeatures
from autoopt_example_plugin.source import SynthSource
from autoopt_example_plugin.trainer import LogRegTrainer


@hookimpl
def autoopt_register_trainers() -> list[object]:
    return [LogRegTrainer()]


@hookimpl
def autoopt_register_feature_sets() -> list[object]:
    return [ReturnsFeatures()]


@hookimpl
def autoopt_register_data_sources() -> list[object]:
    return [SynthSource()]


@hookimpl
def autoopt_register_drift_detectors() -> list[object]:
    return [CusumFactory()]
