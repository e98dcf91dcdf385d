"""The built-in ``builtin-tft`` plugin: registers the TFT trainer as light metadata.

Registering imports nothing heavy: the trainer is a `LazyComponent` whose module
(`autoopt.tft.trainer`, which imports torch, safetensors and optuna) is imported the first time
the ``tft`` trainer is asked for. A LightGBM-only process therefore never holds PyTorch.

A missing or broken torch (absent wheel, missing shared library, a shadowing package) leaves the
trainer listed (``autoopt plugins`` says ``missing: torch`` when it is not installed); asking for
it raises one `PluginError` line naming this plugin, the cause and the install command, and the
plugin set records the failure. Every other plugin, LightGBM included, keeps working.
"""

from __future__ import annotations

from autoopt.plugins import LazyComponent, hookimpl

PLUGIN = "builtin-tft"

TFT = LazyComponent(
    name="tft",
    target="autoopt.tft.trainer:TFTTrainer",
    requires=("torch", "safetensors", "optuna"),
    needs="PyTorch",
    install="pip install 'autoopt[tft]'",
    metadata={"model_type": "tft"},
)


@hookimpl
def autoopt_register_trainers() -> list[object]:
    return [TFT]
