"""The hooks: one trainer, one feature set, one data source (imports are light: numpy, polars)."""

from __future__ import annotations

from autoopt.plugins import hookimpl
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
