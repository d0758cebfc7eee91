"""RegMean (Jin et al. 2023): per linear layer, the weights that best reproduce every model's
outputs on that model's own inputs -- forward passes only.

For a Dense / Conv layer with inputs X_i (Conv: the patches the kernel sees) of model i,
G_i = X_i^T X_i and W* = (sum_i G~_i)^-1 sum_i G~_i W_i, where G~_i keeps G_i's diagonal and
scales its off-diagonal entries by ``alpha`` (0.9 as in the paper; 1 gives the least-squares
solution on all the models' inputs together). The bias is solved with the kernel (a
constant-1 input column), so with alpha = 1 the layer is the exact least-squares fit of
every model's own outputs. Every other weight is averaged; BatchNorm is recomputed.
"""

import keras
import numpy as np

from .common import averaged, finish
from .data import layer_values

LINEAR = ("Dense", "Conv1D", "Conv2D", "Conv3D")


def linear_layers(model):
    """The top-level Dense / Conv layers RegMean solves (others are averaged)."""
    return [(i, layer) for i, layer in enumerate(model.layers)
            if type(layer).__name__ in LINEAR and getattr(layer, "groups", 1) == 1]


def layer_rows(layer, x):
    """The rows a linear layer multiplies by its (flattened) kernel: the inputs of a Dense,
    the patches of a Conv (a convolution with an identity kernel), plus a ones column
    when the layer has a bias."""
    kernel_shape = tuple(layer.kernel.shape)
    if type(layer).__name__ == "Dense":
        rows = x.reshape(-1, kernel_shape[0])
    else:
        size = int(np.prod(kernel_shape[:-1]))
        eye = np.eye(size, dtype="float32").reshape(kernel_shape[:-1] + (size,))
        rows = keras.ops.convert_to_numpy(layer.convolution_op(x, eye)).reshape(-1, size)
    rows = rows.astype("float64")
    if layer.use_bias:
        rows = np.concatenate([rows, np.ones((len(rows), 1))], axis=1)
    return rows


def stacked_kernel(layer):
    """The layer's kernel flattened to (inputs, units), its bias as the last row."""
    kernel = keras.ops.convert_to_numpy(layer.kernel).astype("float64")
    kernel = kernel.reshape(-1, kernel.shape[-1])
    if layer.use_bias:
        kernel = np.concatenate([kernel, keras.ops.convert_to_numpy(layer.bias)[None]], axis=0)
    return kernel


def regmean_solve(grams, kernels, alpha=0.9):
    """(sum_i G~_i)^-1 sum_i G~_i W_i, G~_i = alpha G_i + (1 - alpha) diag(G_i).

    Example:

    ```python
    import numpy as np
    from kfuse.merge.data_aware.regmean import regmean_solve
    g = [np.eye(2), 3 * np.eye(2)]
    print(regmean_solve(g, [np.zeros((2, 1)), np.ones((2, 1))]))  # [[0.75] [0.75]]
    ```
    """
    scaled = [alpha * g + (1 - alpha) * np.diag(np.diag(g)) for g in grams]
    lhs = sum(scaled)
    rhs = sum(g @ w for g, w in zip(scaled, kernels, strict=True))
    try:
        return np.linalg.solve(lhs, rhs)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(lhs, rhs, rcond=None)[0]


def grams(model, x, layers, batch_size=256):
    """G = X^T X of each of ``layers``' rows (``layer_rows``) on ``x``, in batches."""
    found = layer_values(model, layers, x, batch_size)
    totals = []
    for layer, (xin, _) in zip(layers, found, strict=True):
        rows = layer_rows(layer, xin)
        totals.append(rows.T @ rows)
    return totals

def regmean_merge(models, xs, weights, alpha=0.9, batch_size=256):
    """RegMean of ``models``, each with its own inputs in ``xs``."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"regmean: alpha must be in [0, 1], got {alpha!r}")
    merged = averaged(models, weights)
    positions = [i for i, _ in linear_layers(merged)]
    per_model = [grams(m, x, [m.layers[i] for i in positions], batch_size)
                 for m, x in zip(models, xs, strict=True)]
    for k, li in enumerate(positions):
        target = merged.layers[li]
        solved = regmean_solve([w * g[k] for w, g in zip(weights, per_model, strict=True)],
                               [stacked_kernel(m.layers[li]) for m in models], alpha)
        if target.use_bias:
            target.bias.assign(solved[-1].astype(target.bias.dtype))
            solved = solved[:-1]
        target.kernel.assign(solved.reshape(tuple(target.kernel.shape)).astype(target.kernel.dtype))
    return finish(merged, xs)
