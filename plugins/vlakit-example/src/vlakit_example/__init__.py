"""Example vlakit plugin (a template for third parties). Importing this package imports nothing heavy."""

__version__ = "0.1.0"
