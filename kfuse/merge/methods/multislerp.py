"""multislerp: barycentric SLERP of any number of models (of their task vectors, with a
base): project onto the unit sphere, take the weighted mean direction, average in its
tangent space, map back with the exponential map and scale by the weighted mean norm.
mergekit's formula (``normalize_weights`` and ``eps`` as there)."""

import numpy as np

from .base import MergeMethod


def multislerp(tensors, base=None, *, weight, normalize_weights=True, eps=1e-8):
    """Weighted spherical mean of the flattened tensors (or task vectors, with ``base``).

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.multislerp import multislerp
    models = [np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])]
    print(multislerp(models, weight=[1.0, 1.0, 1.0]))  # equal parts, norm 1
    ```
    """
    if len(tensors) == 1:
        return tensors[0]
    shape, dtype = tensors[0].shape, tensors[0].dtype
    stacked = np.stack(tensors) - (0 if base is None else base)
    flat = stacked.reshape(len(tensors), -1)
    w = np.asarray(weight, dtype=dtype)
    if normalize_weights:
        w = w / np.sum(w)
    norms = np.linalg.norm(flat, axis=-1, keepdims=True)
    units = flat / (norms + eps)
    mean = np.sum(units * w[:, None], axis=0)
    mean_norm = np.linalg.norm(mean)
    if mean_norm < eps:
        if len(tensors) != 2:
            raise ValueError(
                "multislerp: the weighted mean direction of the tensors is zero (antipodal "
                "tensors whose weights balance out); use different weights.")
        out = (stacked[0] * w[0] + stacked[1] * w[1]).reshape(shape)
    else:
        mean = mean / mean_norm
        tangents = units - np.sum(units * mean, axis=-1, keepdims=True) * mean
        tangent = np.sum(tangents * w[:, None], axis=0)
        size = np.linalg.norm(tangent) + eps
        out = mean * np.cos(size) + tangent * (np.sin(size) / size)
        out = (out * np.sum(norms[:, 0] * w)).reshape(shape)
    return (out if base is None else out + base).astype(dtype)


METHOD = MergeMethod(
    "multislerp", multislerp, model_parameters={"weight": 1.0},
    global_parameters={"normalize_weights": True, "eps": 1e-8}, takes_base=True,
)
