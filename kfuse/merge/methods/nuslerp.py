"""nuslerp: SLERP of two models at ``t = w_2 / (w_1 + w_2)`` (0.5 when the weights sum to
~0); with a base, SLERP of the two task vectors added to the base. ``nuslerp_flatten``
(default) treats the tensor as one vector; otherwise each vector along the last axis, or
with ``nuslerp_row_wise`` along axis 0, is interpolated on its own. mergekit's formula."""

import numpy as np

from .base import MergeMethod


def _unit(x, eps=1e-7):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def nuslerp_vectors(t, v0, v1, eps=1e-8):
    """SLERP along the last axis; (near-)colinear vectors (1 - cos^2 <= eps^2) interpolate
    linearly.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.nuslerp import nuslerp_vectors
    print(nuslerp_vectors(0.5, np.array([1.0, 0.0]), np.array([0.0, 1.0])))  # [0.707 0.707]
    ```
    """
    cos = np.clip(np.sum(_unit(v0) * _unit(v1), axis=-1, keepdims=True), -1, 1)
    colinear = (1 - cos**2) <= eps**2
    theta = np.arccos(np.where(colinear, 0.0, cos))
    sin = np.where(colinear, 1.0, np.sin(theta))
    spherical = (np.sin((1 - t) * theta) * v0 + np.sin(t * theta) * v1) / sin
    return np.where(colinear, (1 - t) * v0 + t * v1, spherical)


def nuslerp(tensors, base=None, *, weight, nuslerp_row_wise=False, nuslerp_flatten=True):
    """Interpolate ``tensors[0]`` and ``tensors[1]`` (or their task vectors) on the sphere.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.nuslerp import nuslerp
    print(nuslerp([np.array([1.0, 0.0]), np.array([0.0, 1.0])], weight=[1.0, 1.0]))
    ```
    """
    total = sum(weight)
    t = 0.5 if abs(total) < 1e-6 else weight[1] / total
    v0, v1 = tensors if base is None else (tensors[0] - base, tensors[1] - base)
    if nuslerp_flatten:
        out = nuslerp_vectors(t, v0.ravel(), v1.ravel()).reshape(v0.shape)
    elif nuslerp_row_wise and v0.ndim > 1:
        out = np.swapaxes(nuslerp_vectors(t, np.swapaxes(v0, 0, -1), np.swapaxes(v1, 0, -1)),
                          0, -1)
    else:
        out = nuslerp_vectors(t, v0, v1)
    out = out if base is None else base + out
    return out.astype(v0.dtype)


METHOD = MergeMethod(
    "nuslerp", nuslerp, model_parameters={"weight": 1.0},
    global_parameters={"nuslerp_row_wise": False, "nuslerp_flatten": True},
    takes_base=True, min_models=2, max_models=2,
)
