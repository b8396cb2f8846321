"""The version of qudata, on the ground floor: the package, the CLI and the card read it."""

__all__ = ["__version__"]

__version__ = "0.1.0"
