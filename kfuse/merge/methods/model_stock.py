"""model_stock (Jang et al. 2024): t = N cos / (1 + (N - 1) cos); t * mean + (1 - t) * base."""

import itertools

import numpy as np

from .base import MergeMethod


def model_stock(tensors, base):
    """Interpolate between the base and the models' mean by their task vectors' agreement.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.model_stock import model_stock
    base = np.zeros(3)
    print(model_stock([np.array([1.0, 0.0, 1.0]), np.array([1.0, 1.0, 0.0])], base))
    ```
    """
    deltas = [(t - base).ravel().astype("float64") for t in tensors]
    cosines = []
    for a, b in itertools.combinations(deltas, 2):
        denom = np.linalg.norm(a) * np.linalg.norm(b)
        cosines.append(float(a @ b / denom) if denom > 1e-12 else 0.0)
    cos = float(np.mean(cosines))
    n = len(tensors)
    t = n * cos / (1 + (n - 1) * cos) if abs(1 + (n - 1) * cos) > 1e-12 else 0.0
    return (t * np.mean(np.stack(tensors), axis=0) + (1 - t) * base).astype(base.dtype)


METHOD = MergeMethod("model_stock", model_stock, needs_base=True, min_models=2)
