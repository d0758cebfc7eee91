"""Feature layers for branches: fixed transforms with state learned by `adapt()`."""

from kfuse.features.minirocket import MiniRocket
from kfuse.features.standardization import Standardization

__all__ = ["MiniRocket", "Standardization"]
