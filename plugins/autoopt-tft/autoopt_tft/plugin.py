"""The ``builtin-tft`` entry point: registers the TFT trainer when PyTorch imports cleanly.

A missing or broken torch (absent wheel, missing shared library, a shadowing package) raises a
`PluginError` naming this plugin and the cause. The plugin manager records it as a failed
plugin, every other plugin (LightGBM included) still loads, and asking for the ``tft`` trainer
reports the failure.
"""

from __future__ import annotations

from autoopt.errors import PluginError
from autoopt.plugins import hookimpl

PLUGIN = "builtin-tft"

try:
    import safetensors.torch  # noqa: F401
    import torch  # noqa: F401
except Exception as exc:  # any failure to import means the trainer cannot exist here
    raise PluginError(
        f"plugin {PLUGIN!r} (autoopt-tft, the 'tft' trainer) cannot import PyTorch: "
        f"{type(exc).__name__}: {exc}. Install it with: pip install 'autoopt[tft]'"
    ) from exc

from autoopt_tft.trainer import TFTTrainer  # noqa: E402


@hookimpl
def autoopt_register_trainers() -> list[object]:
    return [TFTTrainer()]
