"""ZipIt! (Stoica et al. 2024) for MLPs: merge features within and across models by the
correlation of their activations, optionally only the first layers (a multi-head model).

Each hidden Dense layer's pre-activation features of all N models, on the same inputs, are
standardised and merged greedily: the two most correlated groups of features (from any
models, the same one included when ``within=True``) become one, until the layer has its
original width. The merged feature is the mean of its group (matrix M), and each original
feature is read back as its group's feature (matrix U); a layer then has kernel
sum_a U_prev,a^T K_a M_a^T and bias sum_a M_a b_a. The output layer averages the models'
outputs. ``stop_at=k`` zips the first k Dense layers only: the result is a multi-head model,
a shared trunk and one head per model (the rest of that model's layers), with one output
per model.

Refused (a ``ValueError`` naming the layer): any layer other than Dense and element-wise ones
(activations, Dropout, noise) -- Conv, BatchNorm/LayerNorm, residual joins, attention,
nested models -- and Dense layers on inputs of more than one axis.
"""

import keras
import numpy as np

from .common import load_models
from .data import layer_values

ELEMENTWISE = ("InputLayer", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax",
               "Dropout", "AlphaDropout", "GaussianNoise", "GaussianDropout")


def dense_chain(model, name="models[0]"):
    """Indices of ``model``'s Dense layers, after checking that it is a chain of Dense and
    element-wise layers (else a ``ValueError`` naming the layer ZipIt cannot pair)."""
    previous, dense = None, []
    for i, layer in enumerate(model.layers):
        cls = type(layer).__name__
        if cls not in ELEMENTWISE + ("Dense",) or isinstance(layer, keras.Model):
            raise ValueError(
                f"zipit cannot pair layer {layer.name!r} ({cls}) of {name}: it zips chains of "
                "Dense and element-wise layers (MLPs) only. Merge this model with 'regmean', "
                "'fisher' or kfuse.merge.align + 'linear' instead."
            )
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        if previous is not None and (len(inputs) != 1 or inputs[0] is not previous):
            raise ValueError(f"zipit cannot pair layer {layer.name!r} of {name}: it is not fed "
                             "by the layer before it (a branch or join); zipit takes chains")
        if cls == "Dense" and len(layer.input.shape) != 2:
            raise ValueError(f"zipit cannot pair layer {layer.name!r} of {name}: a Dense on "
                             f"inputs of shape {tuple(layer.input.shape)} (one axis only)")
        previous = layer.output
        if cls == "Dense":
            dense.append(i)
    if not dense:
        raise ValueError(f"zipit found no Dense layer in {name}")
    return dense


def zip_features(features, within=True):
    """``(M, U)`` merging the concatenated features of N models back to one model's width.

    ``features``: one (rows, n) array per model. M (n x N n) averages each group, U (N n x n)
    copies a group's feature back to its members; groups are ordered by their first member.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.data_aware.zipit import zip_features
    a = np.random.default_rng(0).normal(size=(50, 3))
    m, u = zip_features([a, a[:, [2, 0, 1]]])
    print(m @ np.concatenate([a, a[:, [2, 0, 1]]], 1).T - a.T)  # zeros
    ```
    """
    n = features[0].shape[1]
    owner = np.concatenate([np.full(f.shape[1], k) for k, f in enumerate(features)])
    z = np.concatenate(features, axis=1).astype("float64")
    z = (z - z.mean(0)) / (z.std(0) + 1e-12)
    s = z.T @ z / len(z)
    groups = [[i] for i in range(len(owner))]
    models = [{k} for k in owner]
    while len(groups) > n:
        d = np.sqrt(np.maximum(np.diag(s), 1e-12))
        score = s / np.outer(d, d)
        np.fill_diagonal(score, -np.inf)
        if not within:
            clash = np.array([[bool(a & b) for b in models] for a in models])
            score[clash] = -np.inf
        i, j = np.unravel_index(np.argmax(score), score.shape)
        i, j = min(i, j), max(i, j)
        s[i] += s[j]
        s[:, i] += s[:, j]
        s = np.delete(np.delete(s, j, 0), j, 1)
        groups[i] += groups.pop(j)
        models[i] |= models.pop(j)
    order = np.argsort([min(g) for g in groups])
    merge, unmerge = np.zeros((n, len(owner))), np.zeros((len(owner), n))
    for row, k in enumerate(order):
        merge[row, groups[k]] = 1.0 / len(groups[k])
        unmerge[groups[k], row] = 1.0
    return merge, unmerge


def _pre_activation(layer, x):
    kernel = keras.ops.convert_to_numpy(layer.kernel).astype("float64")
    out = x.astype("float64") @ kernel
    return out + keras.ops.convert_to_numpy(layer.bias) if layer.use_bias else out


def _split(matrix, sizes, axis):
    return np.split(matrix, np.cumsum(sizes)[:-1], axis=axis)


def zip_plan(models, x, dense, stop_at, within):
    """Per zipped Dense layer, the merged (kernel, bias), and the final U_a per model."""
    n_models = len(models)
    d_in = models[0].layers[dense[0]].kernel.shape[0]
    unmerge = [np.eye(d_in) for _ in models]
    values = [layer_values(m, [m.layers[i] for i in dense[:stop_at]], x) for m in models]
    plan = []
    for k, li in enumerate(dense[:stop_at]):
        layers = [m.layers[li] for m in models]
        width = layers[0].units
        if k == len(dense) - 1:
            merge = [np.eye(width) / n_models for _ in models]
            new_unmerge = None
        else:
            feats = [_pre_activation(layer, v[k][0]) for layer, v in zip(layers, values,
                                                                          strict=True)]
            m_all, u_all = zip_features(feats, within)
            merge = _split(m_all, [width] * n_models, axis=1)
            new_unmerge = _split(u_all, [width] * n_models, axis=0)
        kernel = sum(u.T @ keras.ops.convert_to_numpy(layer.kernel) @ m.T
                     for u, layer, m in zip(unmerge, layers, merge, strict=True))
        bias = sum(m @ keras.ops.convert_to_numpy(layer.bias) for layer, m in
                   zip(layers, merge, strict=True)) if layers[0].use_bias else None
        plan.append((li, kernel, bias))
        unmerge = new_unmerge
    return plan, unmerge


def _assign(layer, kernel, bias):
    layer.kernel.assign(kernel.astype(layer.kernel.dtype))
    if bias is not None:
        layer.bias.assign(bias.astype(layer.bias.dtype))


def _copy(layer, suffix):
    config = layer.get_config()
    config["name"] = f"{layer.name}{suffix}"
    return type(layer).from_config(config)


def _multi_head(models, plan, unmerge, split_after):
    first = models[0]
    inp = keras.Input(tuple(first.inputs[0].shape[1:]))
    h, trained = inp, {}
    for i, layer in enumerate(first.layers[:split_after + 1]):
        if type(layer).__name__ == "InputLayer":
            continue
        new = _copy(layer, "")
        h = new(h)
        trained[i] = new
    for li, kernel, bias in plan:
        _assign(trained[li], kernel, bias)
    outputs = []
    for a, m in enumerate(models):
        z, first_dense = h, True
        for layer in m.layers[split_after + 1:]:
            new = _copy(layer, f"_head{a}")
            z = new(z)
            weights = [keras.ops.convert_to_numpy(w) for w in layer.weights]
            if type(layer).__name__ == "Dense" and first_dense:
                weights[0] = unmerge[a].T @ weights[0]
                first_dense = False
            new.set_weights(weights)
        outputs.append(z)
    return keras.Model(inp, outputs, name="zipit_multi_head")


def zipit_merge(models, xs, stop_at=None, within=True):
    """ZipIt! of ``models`` (MLPs of one architecture) on the inputs ``xs`` (all rows are
    used for every model). ``stop_at``: how many Dense layers to zip (all by default)."""
    models, _ = load_models(models)
    dense = [dense_chain(m, f"models[{i}]") for i, m in enumerate(models)][0]
    stop_at = len(dense) if stop_at is None else stop_at
    if not (isinstance(stop_at, int) and 1 <= stop_at <= len(dense)):
        raise ValueError(f"zipit: stop_at must be an integer in [1, {len(dense)}] (the number "
                         f"of Dense layers to zip), got {stop_at!r}")
    x = np.concatenate(xs)
    plan, unmerge = zip_plan(models, x, dense, stop_at, within)
    if stop_at == len(dense):
        merged = keras.models.clone_model(models[0])
        merged.set_weights(models[0].get_weights())
        for li, kernel, bias in plan:
            _assign(merged.layers[li], kernel, bias)
        return merged
    nxt = dense[stop_at]
    split_after = nxt - 1
    return _multi_head(models, plan, unmerge, split_after)
