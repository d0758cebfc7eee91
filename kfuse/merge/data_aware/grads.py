"""Gradients with the backend's own autodiff (TensorFlow, JAX, PyTorch) for data-aware merges.

``value_and_grad(fn, params)`` and ``jacobian(fn, params)`` differentiate a function of a
list of tensors; ``forward(model, params, x)`` runs ``model`` with ``params`` in place of its
trainable variables (``stateless_call``), so a gradient flows to them.
"""

import keras
import numpy as np


def _backend():
    name = keras.backend.backend()
    if name not in ("tensorflow", "jax", "torch"):
        raise RuntimeError(f"data-aware merging needs gradients; backend {name!r} has none")
    return name


def _torch_params(params):
    import torch

    return [torch.tensor(np.asarray(keras.ops.convert_to_numpy(p)), requires_grad=True)
            for p in params]


def value_and_grad(fn, params):
    """``(fn(params), d fn / d params)`` for a scalar ``fn`` of a list of tensors (numpy out).

    Example:

    ```python
    import numpy as np
    from keras import ops
    from kfuse.merge.data_aware.grads import value_and_grad
    value, (g,) = value_and_grad(lambda p: ops.sum(p[0] ** 2), [np.array([1.0, 2.0])])
    print(value, g)  # 5.0 [2. 4.]
    ```
    """
    backend = _backend()
    if backend == "tensorflow":
        import tensorflow as tf

        params = [tf.convert_to_tensor(p) for p in params]
        with tf.GradientTape() as tape:
            tape.watch(params)
            value = fn(params)
        grads = tape.gradient(value, params)
    elif backend == "jax":
        import jax

        value, grads = jax.value_and_grad(fn)([keras.ops.convert_to_tensor(p) for p in params])
    else:
        import torch

        params = _torch_params(params)
        value = fn(params)
        grads = torch.autograd.grad(value, params, allow_unused=True)
    grads = [np.zeros(np.shape(p)) if g is None else keras.ops.convert_to_numpy(g)
             for p, g in zip(params, grads, strict=True)]
    return float(keras.ops.convert_to_numpy(value)), grads


def squared_jacobian_sum(fn, params, batches):
    """sum over batches and rows of (d fn / d params)^2 for a vector ``fn(params, *batch)``:
    the sum of squared per-example gradients when row i depends on example i only. One
    compiled function serves every batch (``tf.function`` / ``jax.jit``).

    Example:

    ```python
    import numpy as np
    from kfuse.merge.data_aware.grads import squared_jacobian_sum
    fn = lambda p, x: p[0] * x
    (s,) = squared_jacobian_sum(fn, [np.array(2.0)], [(np.array([1.0, 3.0]),)])
    print(s)  # 10.0
    ```
    """
    backend = _backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(reduce_retracing=True)
        def step(params, *batch):
            with tf.GradientTape() as tape:
                tape.watch(params)
                value = fn(params, *batch)
            return [tf.reduce_sum(tf.square(j), 0) for j in tape.jacobian(value, params)]

        params = [tf.convert_to_tensor(p) for p in params]
    elif backend == "jax":
        import jax

        @jax.jit
        def step(params, *batch):
            return [(j ** 2).sum(0) for j in jax.jacrev(fn)(params, *batch)]

        params = [keras.ops.convert_to_tensor(p) for p in params]
    else:
        from torch.autograd.functional import jacobian as torch_jacobian

        def step(params, *batch):
            found = torch_jacobian(lambda *p: fn(list(p), *batch), tuple(params))
            return [(j ** 2).sum(0) for j in found]

        params = _torch_params(params)
    total = None
    for batch in batches:
        batch = [keras.ops.convert_to_tensor(b) for b in batch]
        found = [keras.ops.convert_to_numpy(s).astype("float64") for s in step(params, *batch)]
        total = found if total is None else [t + f for t, f in zip(total, found, strict=True)]
    return total


def forward(model, params, x):
    """``model(x)`` (inference mode) with ``params`` in place of its trainable variables."""
    non_trainable = [v.value for v in model.non_trainable_variables]
    out, _ = model.stateless_call(params, non_trainable, x, training=False)
    return out


def output_kind(model):
    """``"probabilities"`` when the model's last layer applies softmax (or a one-unit
    sigmoid), else ``"logits"``."""
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    name = getattr(activation, "__name__", "")
    if type(last).__name__ == "Softmax" or name == "softmax":
        return "probabilities"
    if name == "sigmoid":
        return "sigmoid"
    return "logits"


def log_probs(out, kind):
    """Log class probabilities of a batch of outputs (``kind`` from ``output_kind``)."""
    ops = keras.ops
    if kind == "sigmoid" or out.shape[-1] == 1:
        p = out if kind == "sigmoid" else ops.sigmoid(out)
        p = ops.clip(p, 1e-7, 1 - 1e-7)
        return ops.log(ops.concatenate([1 - p, p], axis=-1))
    if kind == "probabilities":
        return ops.log(ops.clip(out, 1e-7, 1.0))
    return ops.log_softmax(out, axis=-1)


def trainable(model, name, method):
    """``model``'s trainable variables; a clear error when it has none."""
    found = list(model.trainable_variables)
    if not found:
        raise ValueError(
            f"{method} needs gradients of {name}'s trainable weights, but {name} has none "
            "(frozen layers: set layer.trainable = True for the layers to merge)"
        )
    return found
