"""An example third-party autoopt plugin (see the package README)."""
