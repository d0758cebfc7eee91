"""karcher: the Karcher (Riemannian) mean of the models' directions on the unit sphere,
found iteratively (``max_iter``, ``tol``), scaled by the mean norm; equal weights, no base.
mergekit's algorithm."""

import numpy as np

from .base import MergeMethod


def _log_map_step(mean, units, alphas, tol):
    """The weighted mean of the log maps of ``units`` at ``mean``."""
    tangent = np.zeros_like(mean)
    for alpha, unit in zip(alphas, units, strict=True):
        dot = np.clip(np.dot(mean, unit), -1.0, 1.0)
        theta = np.arccos(dot)
        if theta >= tol:
            tangent += alpha * (theta / np.sin(theta)) * (unit - dot * mean)
    return tangent


def karcher(tensors, base=None, *, max_iter=10, tol=1e-5):
    """Riemannian mean of the flattened tensors' directions times their mean norm.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.karcher import karcher
    print(karcher([np.array([2.0, 0.0]), np.array([0.0, 2.0])]))  # [1.414 1.414]
    ```
    """
    if len(tensors) == 1:
        return tensors[0]
    shape, dtype = tensors[0].shape, tensors[0].dtype
    alphas = [1.0 / len(tensors)] * len(tensors)
    flat = [t.ravel() for t in tensors]
    norms = [np.linalg.norm(v) for v in flat]
    valid = [i for i, n in enumerate(norms) if n > tol]
    if not valid:
        return np.zeros(shape, dtype)
    units = [flat[i] / norms[i] for i in valid]
    weights = [alphas[i] / sum(alphas[j] for j in valid) for i in valid]
    mean = sum(w * u for w, u in zip(weights, units, strict=True))
    mean_norm = np.linalg.norm(mean)
    mean = units[0].copy() if mean_norm < tol else mean / mean_norm
    for _ in range(max_iter):
        tangent = _log_map_step(mean, units, weights, tol)
        size = np.linalg.norm(tangent)
        if size < tol:
            break
        mean = np.cos(size) * mean + np.sin(size) * (tangent / size)
        unit_norm = np.linalg.norm(mean)
        if unit_norm > tol:
            mean = mean / unit_norm
    scale = sum(a * n for a, n in zip(alphas, norms, strict=True))
    return (scale * mean).reshape(shape).astype(dtype)


METHOD = MergeMethod("karcher", karcher, global_parameters={"max_iter": 10, "tol": 1e-5})
