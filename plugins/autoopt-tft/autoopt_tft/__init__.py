"""autoopt's Temporal Fusion Transformer trainer plugin (PyTorch, safetensors artifacts).

Neither this package nor its plugin module (`autoopt_tft.plugin`, the ``builtin-tft`` entry
point) imports torch: the plugin registers the trainer as a `LazyComponent`, and torch is
imported with `autoopt_tft.trainer.TFTTrainer` the first time the ``tft`` trainer is used. A
broken torch then becomes one `PluginError` line that names the plugin and the cause.
"""

__version__ = "0.1.0"
