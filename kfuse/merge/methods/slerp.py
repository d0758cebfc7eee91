"""slerp: spherical interpolation between two tensors (mergekit's formula and fallback)."""

import numpy as np

from .base import MergeMethod

DOT_THRESHOLD = 0.9995
EPS = 1e-8


def _unit(v):
    norm = np.linalg.norm(v)
    return v / norm if norm > EPS else v


def slerp(tensors, base=None, *, t):
    """Interpolate from ``tensors[0]`` (``t=0``) to ``tensors[1]`` (``t=1``) on the sphere.

    Near-parallel tensors (|cos| > 0.9995) fall back to linear interpolation.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.slerp import slerp
    print(slerp([np.array([1.0, 0.0]), np.array([0.0, 1.0])], t=0.5))  # [0.707 0.707]
    ```
    """
    v0, v1 = tensors
    dot = float(np.sum(_unit(v0.ravel()) * _unit(v1.ravel())))
    if abs(dot) > DOT_THRESHOLD:
        return (1 - t) * v0 + t * v1
    theta0 = np.arccos(dot)
    sin0 = np.sin(theta0)
    s0 = np.sin((1 - t) * theta0) / sin0
    s1 = np.sin(t * theta0) / sin0
    return (s0 * v0 + s1 * v1).astype(v0.dtype)


METHOD = MergeMethod("slerp", slerp, global_parameters={"t": None}, min_models=2, max_models=2)
