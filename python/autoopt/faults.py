"""Fault injection for crash tests: ``AUTOOPT_FAULT_AT=<step>`` SIGKILLs the process right after
that step, so tests can prove every step after a release verdict resumes after a real kill.

Why a kill and not an exception: an exception runs ``finally`` blocks and cleanup; a power cut or
an OOM kill does not. Steps of a release, in order (see `autoopt.pipeline.release`):

``after_verdict``   the passing ``ValidationVerdict`` is in the log
``after_artifact``  the release directory is in the registry
``after_released``  ``ModelReleased`` (and the training reference) is in the log
``after_current``   ``current`` points at the release
``after_promoted``  ``ModelPromoted`` is in the log

Unset (the default) it does nothing; product code calls `reached` once per step.
"""

from __future__ import annotations

import os
import signal

ENV = "AUTOOPT_FAULT_AT"
STEPS = ("after_verdict", "after_artifact", "after_released", "after_current", "after_promoted")


def reached(step: str) -> None:
    """Mark ``step`` done; SIGKILL this process if ``AUTOOPT_FAULT_AT`` names it."""
    if step not in STEPS:
        raise ValueError(f"unknown fault step {step!r}; known: {', '.join(STEPS)}")
    if os.environ.get(ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["ENV", "STEPS", "reached"]
