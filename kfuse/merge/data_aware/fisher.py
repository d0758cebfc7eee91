"""Fisher merging (Matena & Raffel 2022): a per-parameter weighted average, the weights each
model's diagonal Fisher information on its own data.

F_i = mean over examples x of (d log p_i(y_hat | x) / d theta)^2, y_hat the model's own
predicted class (argmax); theta* = sum_i w_i F_i theta_i / sum_i w_i F_i, with each F_i
floored at ``fisher_floor`` (so a parameter no model is sure about gets the plain average).
Per-example gradients come from the backend's autodiff (``grads.jacobian``). Weights that
are not trainable (BatchNorm statistics) are averaged, then BatchNorm is recomputed.
"""

import keras
import numpy as np

from .common import averaged, finish
from .grads import forward, log_probs, output_kind, squared_jacobian_sum, trainable


def diagonal_fisher(model, x, batch_size=32, name="model"):
    """The diagonal Fisher of ``model``'s trainable weights on inputs ``x`` (numpy, one array
    per ``model.trainable_variables``), at the model's own predicted labels.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.merge.data_aware.fisher import diagonal_fisher
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    f = diagonal_fisher(m, np.ones((4, 3), "float32"))
    print([a.shape for a in f])  # [(3, 2), (2,)]
    ```
    """
    variables = trainable(model, name, "fisher")
    kind = output_kind(model)
    batches = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        labels = np.argmax(keras.ops.convert_to_numpy(log_probs(model(xb), kind)), axis=-1)
        batches.append((xb, labels[:, None].astype("int32")))

    def own_log_likelihood(params, xb, index):
        lp = log_probs(forward(model, params, xb), kind)
        return keras.ops.take_along_axis(lp, index, axis=1)[:, 0]

    total = squared_jacobian_sum(own_log_likelihood, [v.value for v in variables], batches)
    return [t / len(x) for t in total]


def fisher_average(arrays, fishers, weights, fisher_floor=1e-6):
    """sum_i w_i F_i theta_i / sum_i w_i F_i, each F_i floored at ``fisher_floor``.

    Example:

    ```python
    import numpy as np
    from kfuse.merge.data_aware.fisher import fisher_average
    print(fisher_average([np.array([0.0]), np.array([1.0])],
                         [np.array([1.0]), np.array([3.0])], [1.0, 1.0]))  # [0.75]
    ```
    """
    num = sum(w * np.maximum(f, fisher_floor) * a for a, f, w in zip(arrays, fishers, weights,
                                                                      strict=True))
    den = sum(w * np.maximum(f, fisher_floor) for f, w in zip(fishers, weights, strict=True))
    return num / den


def fisher_merge(models, xs, weights, fisher_floor=1e-6, batch_size=32):
    """The Fisher-weighted merge of ``models`` (each with its own inputs in ``xs``)."""
    fishers = [diagonal_fisher(m, x, batch_size, f"models[{i}]")
               for i, (m, x) in enumerate(zip(models, xs, strict=True))]
    merged = averaged(models, weights)
    for j, var in enumerate(merged.trainable_variables):
        arrays = [keras.ops.convert_to_numpy(m.trainable_variables[j]) for m in models]
        value = fisher_average([a.astype("float64") for a in arrays], [f[j] for f in fishers],
                               weights, fisher_floor)
        var.assign(value.astype(arrays[0].dtype))
    return finish(merged, xs)
