"""Type stubs for the native extension `autoopt._native` (Rust, PyO3)."""

__version__: str
