"""Plain (unweighted) averaging of branch outputs."""

import keras

from kfuse.layers.base import FusionLayer, weighted_mean


@keras.saving.register_keras_serializable(package="kfuse")
class Average(FusionLayer):
    """The element-wise mean of branch outputs of one shape.

    With a presence mask, the mean is over the present branches only.

    Example:

    ```python
    import numpy as np
    import kfuse

    out = kfuse.layers.Average()([np.ones((2, 4)), 3 * np.ones((2, 4))])  # all 2.0
    ```
    """

    min_branches = 1
    requires_equal_shapes = True
    supports_presence = True

    def fuse(self, inputs, presence):
        return weighted_mean(inputs, [1.0] * len(inputs), presence)
