"""autoopt's built-in plugins, shipped as an ordinary plugin distribution."""
