"""Data for data-aware merges: one input array per model, checked against the model's input.

A data-aware method reads each model's own data (``data=[x1, x2]``) or one set for all
(``data=x``). Each entry is an array, ``(x, y)`` (the labels are not used), or a
``tf.data.Dataset`` / iterable of batches (``(x, y)`` batches keep ``x``); it is read into
one numpy array of at most ``max_rows`` rows.
"""

import keras
import numpy as np

from ...inputs import is_dataset
from ..batchnorm import _batches


def _single_input(model, name):
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(f"{name} has no inputs yet; build it (keras.Input) before merging")
    if len(inputs) != 1:
        raise ValueError(
            f"data-aware merging takes models with one input; {name} has {len(inputs)} "
            f"({[t.name for t in inputs]})"
        )
    return tuple(inputs[0].shape[1:])


def _rows(data, where, max_rows, rank):
    if data is None:
        raise ValueError(f"{where} is None; pass input rows (an array or tf.data)")
    if isinstance(data, tuple) and len(data) in (2, 3) and not is_dataset(data):
        data = data[0]  # (x, y) or (x, y, sample_weight)
    if isinstance(data, dict):
        raise TypeError(f"{where} is a dict; data-aware merging takes one input array per model")
    batches, n = [], 0
    source = data if is_dataset(data) or not hasattr(data, "__array__") else np.asarray(data)
    for batch in _batches(source, 1024):
        batch = np.asarray(keras.ops.convert_to_numpy(batch))
        if batch.ndim == rank:  # an unbatched tf.data: one row per element
            batch = batch[None]
        batches.append(batch)
        n += len(batch)
        if n >= max_rows:
            break
    if not batches:
        raise ValueError(f"{where} has no rows")
    x = np.concatenate(batches)[:max_rows]
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"{where} has dtype {x.dtype}; data-aware merging needs numeric inputs")
    return x.astype("float32")


def model_data(data, models, names=None, max_rows=4096):
    """One float32 input array per model, each checked against its model's input shape.

    ``data`` is one input set for every model or a list with one per model.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.merge.data_aware.data import model_data
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    xs = model_data(np.zeros((5, 3)), [m, m])
    print(len(xs), xs[0].shape)  # 2 (5, 3)
    ```
    """
    names = names or [f"models[{i}]" for i in range(len(models))]
    if isinstance(data, list):
        if len(data) != len(models):
            raise ValueError(
                f"data is a list of {len(data)} entries for {len(models)} models; pass one "
                "input set per model (in the models' order) or one set for all"
            )
        entries = [(d, f"data[{i}]") for i, d in enumerate(data)]
    else:
        entries = [(data, "data")] * len(models)
    arrays = []
    for (d, where), model, name in zip(entries, models, names, strict=True):
        expected = _single_input(model, name)
        x = _rows(d, where, max_rows, len(expected))
        got = tuple(x.shape[1:])
        if len(got) != len(expected) or any(e is not None and e != g
                                            for e, g in zip(expected, got, strict=False)):
            shown = tuple("?" if e is None else e for e in expected)
            raise ValueError(
                f"{where} has rows of shape {got}; {name} takes inputs of shape {shown}"
            )
        arrays.append(x)
    return arrays


def layer_values(model, layers, x, batch_size=256):
    """Each of ``layers``' (input, output) on ``x``, from one forward pass of ``model``.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.merge.data_aware.data import layer_values
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    ((xin, out),) = layer_values(m, [m.layers[0]], np.ones((4, 3)))
    print(xin.shape, out.shape)  # (4, 3) (4, 2)
    ```
    """
    tensors = []
    for layer in layers:
        tensors += [layer.input, layer.output]
    probe = keras.Model(model.inputs[0], tensors)
    parts = [[keras.ops.convert_to_numpy(t) for t in probe(x[i:i + batch_size], training=False)]
             for i in range(0, len(x), batch_size)]
    found = [np.concatenate(column) for column in zip(*parts, strict=True)]
    return [(found[2 * i], found[2 * i + 1]) for i in range(len(layers))]
