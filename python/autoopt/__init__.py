"""autoopt: keeps a live trading system's models and parameters at their best, auditably."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("autoopt")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
