"""Sparsification of task vectors: top-k by magnitude (TIES) and random drop (DARE)."""

import numpy as np


def magnitude_mask(delta, density):
    """Boolean mask keeping the ``int(density * size)`` entries of largest magnitude.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.sparsify import magnitude_mask
    print(magnitude_mask(np.array([0.1, -3.0, 2.0, 0.5]), 0.5))  # [False  True  True False]
    ```
    """
    flat = np.abs(delta).ravel()
    k = int(density * flat.size)
    mask = np.zeros(flat.size, dtype=bool)
    if density >= 1:
        mask[:] = True
    elif k > 0:
        mask[np.argsort(-flat, kind="stable")[:k]] = True
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
