"""Sparsification of task vectors, with mergekit's (0.1.5, ``mergekit/sparsify.py``)
conventions: top-k by magnitude (TIES), random drop (DARE), magnitude outliers
(breadcrumbs), magnitude-ranked drop probabilities (DELLA), and L1 rescaling."""

import numpy as np


def magnitude_mask(delta, density):
    """Boolean mask keeping the ``max(1, int(density * size))`` entries of largest magnitude
    (a positive density keeps at least one entry, as mergekit does).

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.sparsify import magnitude_mask
    print(magnitude_mask(np.array([0.1, -3.0, 2.0, 0.5]), 0.5))  # [False  True  True False]
    ```
    """
    flat = np.abs(delta).ravel()
    mask = np.zeros(flat.size, dtype=bool)
    if density >= 1:
        mask[:] = True
    elif density > 0 and flat.size:
        k = max(1, int(density * flat.size))
        mask[np.argpartition(-flat, k - 1)[:k]] = True
    return mask.reshape(delta.shape)


def magnitude_outliers_mask(delta, density, gamma):
    """Breadcrumbs: drop the ``int(gamma * size)`` largest magnitudes and then the smallest,
    keeping ``int(density * size)`` entries (the top cut shrinks if it must).

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.sparsify import magnitude_outliers_mask
    print(magnitude_outliers_mask(np.array([0.1, -3.0, 2.0, 0.5]), 0.5, 0.25))
    # [False False  True  True]
    ```
    """
    if density >= 1:
        return np.ones(delta.shape, dtype=bool)
    n = delta.size
    target, top = int(density * n), int(gamma * n)
    bottom = max(0, n - target - top)
    mask = np.zeros(n, dtype=bool)
    if target > 0:
        order = np.argpartition(np.abs(delta).ravel(), [bottom, bottom + target - 1])
        mask[order[bottom:bottom + target]] = True
    return mask.reshape(delta.shape)


def random_mask(shape, density, rng):
    """Bernoulli(``density``) keep-mask drawn from ``rng`` (``rng.random(shape) < density``).

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.sparsify import random_mask
    print(random_mask((4,), 0.5, np.random.default_rng(0)))
    ```
    """
    return rng.random(shape) < density


def della_probabilities(delta, density, epsilon):
    """DELLA's keep probabilities: within each row (axis 1; a 1-D tensor is one row), rank
    the magnitudes and map the ranks linearly onto ``[density - epsilon, density + epsilon]``
    (the smallest magnitude gets the lowest). A row of one entry gets ``density``.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.sparsify import della_probabilities
    print(della_probabilities(np.array([0.1, -3.0, 2.0]), 0.5, 0.2))  # [0.3 0.7 0.5]
    ```
    """
    if not (0 < density - epsilon and density + epsilon < 1):
        raise ValueError(
            f"della: density +- epsilon must lie in (0, 1), got density={density}, "
            f"epsilon={epsilon}; lower epsilon (default 0.15) or move density."
        )
    rows = np.abs(delta)[None] if delta.ndim < 2 else np.abs(delta)
    ranks = np.argsort(np.argsort(rows, axis=1, kind="stable"), axis=1).astype(delta.dtype)
    span = rows.shape[1] - 1
    rank_norm = ranks / span if span > 0 else np.full_like(ranks, 0.5)
    return ((density - epsilon) + rank_norm * 2 * epsilon).reshape(delta.shape)


def l1_scale(delta, mask, eps=1e-7):
    """The factor that gives ``delta * mask`` the L1 norm of ``delta`` (mergekit's
    ``rescale``); 1 when either norm is below ``eps``.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.sparsify import l1_scale
    print(l1_scale(np.array([1.0, -3.0]), np.array([False, True])))  # 1.333...
    ```
    """
    before = np.sum(np.abs(delta))
    after = np.sum(np.abs(delta * mask))
    if before < eps or after < eps:
        return 1.0
    return before / after
