"""dare_linear / dare_ties: drop task-vector entries at random (keep prob. ``density``), rescale.

As mergekit 0.1.5 does, ``rescale`` (on by default) multiplies the kept entries so the task
vector keeps its L1 norm (the DARE paper, Yu et al. 2023, divides by ``density``, which is
the same in expectation), and dare_ties does not normalise by default. The masks come from
``rng`` (``numpy.random.Generator``), one ``rng.random(shape) < density`` per model in
order, so a seed reproduces them.
"""

from .base import MergeMethod
from .sparsify import random_mask
from .task_arithmetic import generalized_task_arithmetic, sparse_masks


def _masks(tensors, base, density, rng, rescale):
    return sparse_masks(tensors, base, lambda d, i: random_mask(d.shape, density[i], rng),
                        rescale)


def dare_linear(tensors, base, *, weight, density, rng, normalize=False, rescale=True, **kw):
    """DARE without sign consensus: base + lambda * sum_i w_i rescaled(mask_i tau_i).

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.dare import dare_linear
    rng = np.random.default_rng(0)
    print(dare_linear([np.ones(4)], np.zeros(4), weight=[1.0], density=[0.5], rng=rng))
    ```
    """
    return generalized_task_arithmetic(
        tensors, base, weight=weight, lam=kw.get("lambda", 1.0), normalize=normalize,
        masks=_masks(tensors, base, density, rng, rescale),
    )


def dare_ties(tensors, base, *, weight, density, rng, normalize=False, rescale=True, **kw):
    """DARE masks, then TIES sign election (and, with ``normalize``, the disjoint mean).

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.dare import dare_ties
    rng = np.random.default_rng(0)
    models = [np.ones(4), -np.ones(4) * 2]
    print(dare_ties(models, np.zeros(4), weight=[1.0, 1.0], density=[0.5, 0.5], rng=rng))
    ```
    """
    return generalized_task_arithmetic(
        tensors, base, weight=weight, lam=kw.get("lambda", 1.0), normalize=normalize,
        consensus=True, masks=_masks(tensors, base, density, rng, rescale),
    )


_MODEL = {"weight": 1.0, "density": 1.0}
_GLOBAL = {"lambda": 1.0, "normalize": False, "rescale": True, "seed": 0}
DARE_LINEAR = MergeMethod("dare_linear", dare_linear, dict(_MODEL), dict(_GLOBAL),
                          needs_base=True, random=True)
DARE_TIES = MergeMethod("dare_ties", dare_ties, dict(_MODEL), dict(_GLOBAL),
                        needs_base=True, random=True)
