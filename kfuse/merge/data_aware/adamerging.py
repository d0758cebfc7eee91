"""AdaMerging (Yang et al. 2024): task-arithmetic coefficients learned by entropy minimisation
on unlabeled inputs.

theta = theta_base + sum_k lambda_k^l (theta_k - theta_base), one lambda per task and per
layer (``granularity="layer"``) or per task (``"task"``). The loss is the sum over tasks of
the mean prediction entropy of the merged model on a batch of that task's inputs; lambda
starts at ``init`` (0.3 as in the paper), takes ``steps`` Adam steps of size ``lr`` (500 and
1e-3 as in the paper) and is clipped to [0, 1] after each. The method assumes low entropy
means high accuracy; where the merge is poor it need not: on kfuse's MNIST-1D multi-task
benchmark entropy falls as lambda grows while accuracy falls too, and a large ``lr`` drives
lambda to 1 (accuracy 31% -> 15%). Gradients come from the backend's autodiff. BatchNorm moving
statistics are taken from the base, then recomputed on all the data.
"""

import dataclasses

import keras
import numpy as np

from ..checks import _walk
from .common import finish
from .grads import forward, log_probs, output_kind, trainable, value_and_grad


@dataclasses.dataclass
class AdaMergingResult:
    """``model`` (the merge), ``coefficients`` (tasks x groups, in [0, 1]), ``groups`` (the
    layer name each column of ``coefficients`` belongs to) and ``history`` (the loss of each
    step)."""

    model: keras.Model
    coefficients: np.ndarray
    groups: list
    history: list


def _groups(model, granularity):
    variables = model.trainable_variables
    if granularity == "task":
        return [0] * len(variables), ["all"]
    if granularity != "layer":
        raise ValueError(f"adamerging: granularity must be 'layer' or 'task', got {granularity!r}")
    owner = {}
    for layer in _walk(model):
        if layer is model:
            continue
        for v in layer.trainable_variables:
            owner.setdefault(id(v), layer.name)
    names = []
    for v in variables:
        name = owner.get(id(v), v.path.split("/")[0])
        if name not in names:
            names.append(name)
    return [names.index(owner.get(id(v), v.path.split("/")[0])) for v in variables], names


def _entropy(out, kind):
    lp = log_probs(out, kind)
    return -keras.ops.mean(keras.ops.sum(keras.ops.exp(lp) * lp, axis=-1))


def _merged(base, taus, group, lam):
    ops = keras.ops
    return [b + ops.tensordot(ops.take(lam, g, axis=1), t, axes=1)
            for b, t, g in zip(base, taus, group, strict=True)]


def adamerging(models, base, xs, granularity="layer", steps=500, lr=1e-3, init=0.3,
               batch_size=64, seed=0):
    """Learn AdaMerging coefficients; returns an ``AdaMergingResult``.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.merge.data_aware.adamerging import adamerging
    def net():
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    base, a, b = net(), net(), net()
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    result = adamerging([a, b], base, [x, x], steps=2)
    print(result.coefficients.shape)  # (2, 1)
    ```
    """
    trainable(base, "base", "adamerging")
    for i, m in enumerate(models):
        trainable(m, f"models[{i}]", "adamerging")
    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"adamerging: steps must be an integer >= 0, got {steps!r}")
    merged = keras.models.clone_model(base)
    merged.set_weights(base.get_weights())
    group, names = _groups(merged, granularity)
    theta = [keras.ops.convert_to_numpy(v) for v in base.trainable_variables]
    taus = [keras.ops.convert_to_tensor(np.stack(
        [keras.ops.convert_to_numpy(m.trainable_variables[j]) - t for m in models]))
        for j, t in enumerate(theta)]
    base_t = [keras.ops.convert_to_tensor(t) for t in theta]
    group_t = [keras.ops.convert_to_tensor(np.array(g, "int32")) for g in group]
    kind = output_kind(base)
    lam = np.full((len(models), len(names)), float(init), "float32")
    m1, m2 = np.zeros_like(lam), np.zeros_like(lam)
    rng, history = np.random.default_rng(seed), []
    for step in range(1, steps + 1):
        batches = [x[rng.choice(len(x), min(batch_size, len(x)), replace=False)] for x in xs]

        def loss(p, batches=batches):
            params = _merged(base_t, taus, group_t, p[0])
            return sum(_entropy(forward(merged, params, b), kind) for b in batches)

        value, (g,) = value_and_grad(loss, [lam])
        history.append(value)
        m1 = 0.9 * m1 + 0.1 * g
        m2 = 0.999 * m2 + 0.001 * g * g
        step_size = lr * np.sqrt(1 - 0.999 ** step) / (1 - 0.9 ** step)
        lam = np.clip(lam - step_size * m1 / (np.sqrt(m2) + 1e-8), 0.0, 1.0).astype("float32")
    final = _merged(base_t, taus, group_t, keras.ops.convert_to_tensor(lam))
    for var, value in zip(merged.trainable_variables, final, strict=True):
        var.assign(keras.ops.convert_to_numpy(value).astype(var.dtype))
    return AdaMergingResult(finish(merged, xs), lam, names, history)
