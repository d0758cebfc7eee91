"""``repair_batchnorm``: recompute BatchNorm moving statistics after a merge.

Averaged weights change every layer's activation statistics, so the moving mean and
variance copied from one input no longer fit (REPAIR, Jordan et al. 2023; SWA's bn_update).
Each BatchNormalization layer is reset to moving_mean 0 / moving_variance 1, and batch k of
the data is run in training mode with momentum (k - 1) / k: the cumulative average.
"""

import keras
import numpy as np

from .checks import _walk


def batchnorm_layers(model):
    """Every ``keras.layers.BatchNormalization`` in ``model``, nested models included.

    Example:

    ```python
    import keras
    from kfuse.merge.batchnorm import batchnorm_layers
    m = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization()])
    print(len(batchnorm_layers(m)))  # 1
    ```
    """
    return [layer for layer in _walk(model) if isinstance(layer, keras.layers.BatchNormalization)]


def _batches(data, batch_size):
    if isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], (int, float)):
        data = data[0]  # (x, y): the labels are not needed
    if isinstance(data, dict):
        n = len(next(iter(data.values())))
        for start in range(0, n, batch_size):
            yield {k: np.asarray(v[start:start + batch_size]) for k, v in data.items()}
        return
    if isinstance(data, np.ndarray) or hasattr(data, "__array__") and not hasattr(data, "take"):
        data = np.asarray(data)
        for start in range(0, len(data), batch_size):
            yield data[start:start + batch_size]
        return
    for batch in data:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def repair_batchnorm(model, data, batch_size=256):
    """Recompute every BatchNorm layer's moving mean / variance on ``data``; returns ``model``.

    ``data``: inputs (array, dict of arrays, ``(x, y)``), or an iterable / ``tf.data`` of
    batches. Statistics are the cumulative average over the batches.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.merge import repair_batchnorm
    m = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization()])
    x = np.random.default_rng(0).normal(5.0, 2.0, (512, 3)).astype("float32")
    repair_batchnorm(m, x)
    print(m.layers[0].moving_mean.numpy())  # about [5 5 5]
    ```
    """
    layers = batchnorm_layers(model)
    if not layers:
        return model
    saved = [(layer.momentum, layer.trainable) for layer in layers]
    for layer in layers:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, "float32"))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, "float32"))
        layer.trainable = True
    count = 0
    try:
        for batch in _batches(data, batch_size):
            count += 1
            for layer in layers:
                layer.momentum = (count - 1) / count
            model(batch, training=True)
    finally:
        for layer, (momentum, trainable) in zip(layers, saved, strict=False):
            layer.momentum, layer.trainable = momentum, trainable
    if count == 0:
        raise ValueError("repair_batchnorm got no batches of data; pass training inputs")
    return model
