"""autoopt's Temporal Fusion Transformer trainer (PyTorch, safetensors artifacts).

Part of the autoopt package; its libraries come with the ``tft`` extra
(``pip install 'autoopt[tft]'``). Neither this package nor its plugin module
(`autoopt.tft.plugin`, the built-in ``builtin-tft`` plugin) imports torch: the plugin registers
the trainer as a `LazyComponent`, and torch is imported with `autoopt.tft.trainer.TFTTrainer` the
first time the ``tft`` trainer is used. A missing or broken torch then becomes one `PluginError`
line that names the plugin, the cause and the extra to install.
"""
