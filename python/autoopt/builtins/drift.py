"""The ``builtin-drift`` entry point: registers autoopt's streaming drift detectors (ADWIN,
Page-Hinkley) through the same hook as a third-party detector, so ``policy.drift.detectors``
treats built-in and plugin detectors alike (`autoopt.core.detectors`).

The factories live in `autoopt.drift` (the native detectors are already imported there), so
registering costs nothing.
"""

from __future__ import annotations

from autoopt.drift import BUILTIN_STREAM_FACTORIES
from autoopt.plugins import hookimpl


@hookimpl
def autoopt_register_drift_detectors() -> list[object]:
    return list(BUILTIN_STREAM_FACTORIES)
