"""passthrough: one model's tensor, optionally times ``scale`` (mergekit's method; its
layer-slice stacking is not a tensor method and is not offered)."""

from .base import MergeMethod


def passthrough(tensors, base=None, *, scale):
    """``tensors[0]``, times ``scale[0]`` unless it is ``None``.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.methods.passthrough import passthrough
    print(passthrough([np.ones(2)], scale=[0.5]))  # [0.5 0.5]
    ```
    """
    (tensor,) = tensors
    return tensor if scale[0] is None else tensor * scale[0]


METHOD = MergeMethod("passthrough", passthrough, model_parameters={"scale": None},
                     min_models=1, max_models=1)
