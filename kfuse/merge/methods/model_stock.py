"""model_stock (Jang et al. 2024): t = N cos / (1 + (N - 1) cos); t * mean + (1 - t) * base.

As mergekit: cos is the mean pairwise cosine of the task vectors (norm products clamped at
1e-6), t = 0 (the base) where 1 + (N - 1) cos is within 1e-6 of 0, and ``filter_wise``
computes one t per vector along the last axis instead of one per tensor.
"""

import itertools

import numpy as np

from .base import MergeMethod


def model_stock(tensors, base, *, filter_wise=False):
    """Interpolate between the base and the models' mean by their task vectors' agreement.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.model_stock import model_stock
    base = np.zeros(3)
    print(model_stock([np.array([1.0, 0.0, 1.0]), np.array([1.0, 1.0, 0.0])], base))
    ```
    """
    shape = base.shape
    if filter_wise:
        base_v = base[None] if base.ndim == 1 else base
        models = [t[None] if t.ndim == 1 else t for t in tensors]
    else:
        base_v, models = base.reshape(-1), [t.reshape(-1) for t in tensors]
    deltas = [m - base_v for m in models]
    cosines = []
    for a, b in itertools.combinations(deltas, 2):
        norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
        cosines.append(np.clip(np.sum(a * b, axis=-1) / np.maximum(norms, 1e-6), -1, 1))
    cos = np.mean(cosines, axis=0)[..., None]
    n = len(tensors)
    denominator = 1 + (n - 1) * cos
    singular = np.abs(denominator) < 1e-6
    t = np.where(singular, 0.0, n * cos / np.where(singular, 1.0, denominator))
    merged = t * (sum(models) / n) + (1 - t) * base_v
    return merged.reshape(shape).astype(base.dtype)


METHOD = MergeMethod("model_stock", model_stock, global_parameters={"filter_wise": False},
                     needs_base=True, min_models=2)
