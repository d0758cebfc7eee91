"""The fused graph: `stack()` / `early_fusion()` (graph), the layers above the branches
(top) and the `FusedModel` they return (fused)."""

from kfuse.models.fused import FusedModel
from kfuse.models.graph import early_fusion, stack

__all__ = ["FusedModel", "early_fusion", "stack"]
