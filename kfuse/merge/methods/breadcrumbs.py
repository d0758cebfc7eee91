"""breadcrumbs / breadcrumbs_ties (Davari & Belilovsky 2023): cut each task vector at both
ends, the ``gamma`` fraction of largest magnitudes and the smallest until ``density`` is
left; breadcrumbs_ties adds TIES's sign election. mergekit's defaults: gamma 0.01, no
normalisation, no rescaling."""

from .base import MergeMethod
from .sparsify import magnitude_outliers_mask
from .task_arithmetic import generalized_task_arithmetic, sparse_masks


def _merge(tensors, base, weight, density, gamma, normalize, rescale, lam, consensus):
    masks = sparse_masks(
        tensors, base, lambda d, i: magnitude_outliers_mask(d, density[i], gamma[i]), rescale)
    return generalized_task_arithmetic(tensors, base, weight=weight, lam=lam,
                                       normalize=normalize, consensus=consensus, masks=masks)


def breadcrumbs(tensors, base, *, weight, density, gamma, normalize=False, rescale=False,
                **kw):
    """Task arithmetic over breadcrumb-masked task vectors.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.breadcrumbs import breadcrumbs
    model = np.array([0.1, -3.0, 2.0, 0.5])
    print(breadcrumbs([model], np.zeros(4), weight=[1.0], density=[0.5], gamma=[0.25]))
    # [0.  0.  2.  0.5]
    ```
    """
    return _merge(tensors, base, weight, density, gamma, normalize, rescale,
                  kw.get("lambda", 1.0), consensus=False)


def breadcrumbs_ties(tensors, base, *, weight, density, gamma, normalize=False,
                     rescale=False, **kw):
    """Breadcrumb masks, then TIES sign election.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.breadcrumbs import breadcrumbs_ties
    models = [np.array([1.0, -2.0, 0.5]), np.array([-1.5, 1.0, 0.2])]
    print(breadcrumbs_ties(models, np.zeros(3), weight=[1.0, 1.0], density=[0.67, 0.67],
                           gamma=[0.0, 0.0]))
    ```
    """
    return _merge(tensors, base, weight, density, gamma, normalize, rescale,
                  kw.get("lambda", 1.0), consensus=True)


_MODEL = {"weight": 1.0, "density": 1.0, "gamma": 0.01}
_GLOBAL = {"lambda": 1.0, "normalize": False, "rescale": False}
BREADCRUMBS = MergeMethod("breadcrumbs", breadcrumbs, dict(_MODEL), dict(_GLOBAL),
                          needs_base=True)
BREADCRUMBS_TIES = MergeMethod("breadcrumbs_ties", breadcrumbs_ties, dict(_MODEL),
                               dict(_GLOBAL), needs_base=True)
