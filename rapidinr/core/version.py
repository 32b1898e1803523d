"""The package version, in one place (the wheel's metadata and every results file read it)."""
__version__ = "0.1.0"
