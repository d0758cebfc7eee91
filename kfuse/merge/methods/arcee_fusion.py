"""arcee_fusion: keep the model's change where it matters: importance = |theta - base| x
KL(softmax(theta) || softmax(base)) (softmax over the last axis, +1e-8), kept where it is
at least median + 1.5 IQR of all importances (quantiles as mergekit: the sorted value at
index ``int(q * (n - 1))``; mergekit samples 1e6 entries of larger tensors, kfuse sorts
them all). Base plus exactly one model."""

import numpy as np

from .base import MergeMethod


def _softmax(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def fusion_importance(model, base):
    """|model - base| times the KL divergence of their last-axis softmaxes.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.arcee_fusion import fusion_importance
    print(fusion_importance(np.array([[1.0, 0.0]]), np.zeros((1, 2))))
    ```
    """
    p = _softmax(model) + 1e-8
    q = _softmax(base) + 1e-8
    kl = np.sum(p * np.log(p / q), axis=-1, keepdims=True)
    return np.abs(model - base) * kl


def arcee_fusion(tensors, base):
    """base + (theta - base) where importance >= median + 1.5 (q3 - q1).

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.arcee_fusion import arcee_fusion
    rng = np.random.default_rng(0)
    base = rng.normal(size=(4, 8))
    print(arcee_fusion([base + rng.normal(size=(4, 8))], base).shape)
    ```
    """
    (model,) = tensors
    importance = fusion_importance(model, base)
    ordered = np.sort(importance.ravel())
    q1, median, q3 = (ordered[int(q * (ordered.size - 1))] for q in (0.25, 0.5, 0.75))
    keep = importance >= median + 1.5 * (q3 - q1)
    return (base + (model - base) * keep).astype(base.dtype)


METHOD = MergeMethod("arcee_fusion", arcee_fusion, needs_base=True, min_models=1,
                     max_models=1)
