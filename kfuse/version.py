"""The kfuse version: one place, read by `kfuse.__version__` and stored in every fused model."""

__version__ = "0.2.0"
