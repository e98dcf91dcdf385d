"""autoopt's Temporal Fusion Transformer trainer plugin (PyTorch, safetensors artifacts).

Importing this package does not import torch; the plugin module (`autoopt_tft.plugin`, the
``builtin-tft`` entry point) does, and turns a broken torch into a `PluginError` that names the
plugin and the cause. The trainer itself is `autoopt_tft.trainer.TFTTrainer`.
"""

__version__ = "0.1.0"
