"""autoopt's built-in plugins: data sources, feature sets, validators, the LightGBM trainer and
the risk tuner.

They ship inside the autoopt package so that one ``pip install autoopt`` gives a working core,
and they are registered through the same hooks as any third-party plugin (each module here is
one plugin, listed in `autoopt.plugins.manager.DEFAULT_PLUGINS` and loaded before entry points).
"""
