"""The package version, in a module of its own so that code inside a3d (the CLI, the avatar metadata)
and setup.py can read it without importing the package root."""
__version__ = "0.1.0"
