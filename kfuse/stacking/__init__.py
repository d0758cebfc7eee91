"""Training fused models: the leak-free out-of-fold `Stacker`, feature caching,
per-branch fit settings and resumable checkpoints."""

from kfuse.stacking.stacker import Stacker

__all__ = ["Stacker"]
