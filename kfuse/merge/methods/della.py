"""della / della_linear (Deep et al. 2024, DELLA-Merging): DARE whose keep probability
grows with magnitude, ranked within each row over ``[density - epsilon, density + epsilon]``;
kept entries rescaled to the task vector's L1 norm; della adds TIES's sign election and
normalises. mergekit's defaults: epsilon 0.15, rescale on, normalise for della only."""

import numpy as np

from .base import MergeMethod
from .sparsify import della_probabilities
from .task_arithmetic import generalized_task_arithmetic, sparse_masks


def della_mask(delta, density, epsilon, rng):
    """A DELLA keep-mask: ``rng.random(shape) < della_probabilities(...)`` (all kept at
    ``density >= 1``).

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.della import della_mask
    print(della_mask(np.array([0.1, -3.0, 2.0]), 0.5, 0.2, np.random.default_rng(0)))
    ```
    """
    if density >= 1:
        return np.ones(delta.shape, dtype=bool)
    return rng.random(delta.shape) < della_probabilities(delta, density, epsilon)


def _merge(tensors, base, weight, density, epsilon, rng, normalize, rescale, lam, consensus):
    masks = sparse_masks(
        tensors, base, lambda d, i: della_mask(d, density[i], epsilon[i], rng), rescale)
    return generalized_task_arithmetic(tensors, base, weight=weight, lam=lam,
                                       normalize=normalize, consensus=consensus, masks=masks)


def della(tensors, base, *, weight, density, epsilon, rng, normalize=True, rescale=True,
          **kw):
    """DELLA masks, then TIES sign election and the disjoint mean.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.della import della
    models = [np.array([1.0, -2.0, 0.5]), np.array([-1.5, 1.0, 0.2])]
    print(della(models, np.zeros(3), weight=[1.0, 1.0], density=[0.5, 0.5],
                epsilon=[0.1, 0.1], rng=np.random.default_rng(0)))
    ```
    """
    return _merge(tensors, base, weight, density, epsilon, rng, normalize, rescale,
                  kw.get("lambda", 1.0), consensus=True)


def della_linear(tensors, base, *, weight, density, epsilon, rng, normalize=False,
                 rescale=True, **kw):
    """DELLA masks, then task arithmetic.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.della import della_linear
    print(della_linear([np.array([1.0, -2.0, 0.5])], np.zeros(3), weight=[1.0],
                       density=[0.5], epsilon=[0.1], rng=np.random.default_rng(0)))
    ```
    """
    return _merge(tensors, base, weight, density, epsilon, rng, normalize, rescale,
                  kw.get("lambda", 1.0), consensus=False)


_MODEL = {"weight": 1.0, "density": 1.0, "epsilon": 0.15}
DELLA = MergeMethod("della", della, dict(_MODEL),
                    {"lambda": 1.0, "normalize": True, "rescale": True, "seed": 0},
                    needs_base=True, random=True)
DELLA_LINEAR = MergeMethod("della_linear", della_linear, dict(_MODEL),
                           {"lambda": 1.0, "normalize": False, "rescale": True, "seed": 0},
                           needs_base=True, random=True)
