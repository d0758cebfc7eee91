"""REPAIR without BatchNorm (Jordan et al. 2023): rescale each Dense / Conv layer of a merged
model so its pre-activation channels have the mean and standard deviation the endpoints'
channels have, mixed with the merge's weights.

For channel c of a layer, target mean = sum_i w_i mu_i,c and target std = sum_i w_i
sigma_i,c (w normalised), the endpoints' statistics on ``data``; the merged layer's own
statistics (mu, sigma), measured after the layers before it were repaired, are moved there
by kernel *= s, bias = (bias - mu) s + target mean with s = target std / sigma. Forward
passes only. The output layer is left as it is.
"""

import keras
import numpy as np

from .common import load_models
from .data import layer_values, model_data
from .regmean import layer_rows, linear_layers, stacked_kernel


def channel_stats(model, layer_index, x):
    """Mean and std of each output channel of a Dense / Conv layer's pre-activation."""
    layer = model.layers[layer_index]
    ((xin, _),) = layer_values(model, [layer], x)
    pre = layer_rows(layer, xin) @ stacked_kernel(layer)
    return pre.mean(0), pre.std(0)


def repair_activations(merged, endpoints, data, weights=None):
    """Rescale ``merged``'s hidden Dense / Conv layers in place to the endpoints' activation
    statistics on ``data`` (inputs); returns ``merged``.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.merge import merge
    from kfuse.merge.data_aware.repair import repair_activations
    def net():
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                                 keras.layers.Dense(2)])
    a, b = net(), net()
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    fixed = repair_activations(merge([a, b], "linear"), [a, b], x)
    ```
    """
    endpoints, _ = load_models(list(endpoints) + [merged])
    endpoints = endpoints[:-1]
    weights = np.ones(len(endpoints)) if weights is None else np.asarray(weights, "float64")
    if len(weights) != len(endpoints) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"repair_activations: weights must be {len(endpoints)} non-negative "
                         f"numbers, not all 0, got {list(weights)}")
    weights = weights / weights.sum()
    (x,) = model_data(data, [merged], ["merged"])
    outputs = {id(t) for t in merged.outputs}
    hidden = [(li, layer) for li, layer in linear_layers(merged) if id(layer.output) not in outputs]
    for _, layer in hidden:
        if not layer.use_bias:
            raise ValueError(f"repair_activations: layer {layer.name!r} has no bias to shift; "
                             "build it with use_bias=True")
    for li, layer in hidden:
        stats = [channel_stats(m, li, x) for m in endpoints]
        mean = sum(w * s[0] for w, s in zip(weights, stats, strict=True))
        std = sum(w * s[1] for w, s in zip(weights, stats, strict=True))
        own_mean, own_std = channel_stats(merged, li, x)
        scale = std / np.maximum(own_std, 1e-8)
        kernel = keras.ops.convert_to_numpy(layer.kernel) * scale
        layer.kernel.assign(kernel.astype(layer.kernel.dtype))
        bias = (keras.ops.convert_to_numpy(layer.bias) - own_mean) * scale + mean
        layer.bias.assign(bias.astype(layer.bias.dtype))
    return merged
