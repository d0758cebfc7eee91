"""Feature layers for branches: fixed transforms with state learned by `adapt()`."""

from kfuse.features.minirocket import MiniRocket

__all__ = ["MiniRocket"]
