"""`predict_in_memory`: `Model.predict` on in-memory arrays without Keras's data pipeline.

`Model.predict` on numpy data builds a `tf.data` pipeline for every call and draws each
batch through an iterator, whose threads compete with the model's own on a small CPU.
`predict_in_memory` keeps one traced function per model (cached, the batch dimension
left open so it is traced once) and calls it on consecutive slices of the arrays, so a
call costs the model's arithmetic plus a function call per batch. The batches, the
forward pass (`model(x, training=False)`, as `predict_step`), the dtype rule (floats
other than `floatx` are cast to it) and the callbacks (`on_predict_*`, a progress bar
unless `verbose=0`) are those of `Model.predict`, so the result is the same array, bit
for bit. `model.jit_compile=True` (as `compile` sets it) compiles the function with XLA.

`FusedModel.predict` and `branch_outputs` use it through `supports()`: the TensorFlow
backend, the default distribution strategy, numpy arrays of numbers, no `steps`.
Anything else goes to `Model.predict`.
"""

import weakref

import keras
import numpy as np

from kfuse.trainers.epoch_loop import flatten

#: `Model.predict` arguments the in-memory loop understands
ACCEPTED = {"batch_size", "verbose", "callbacks"}

#: model -> {jit_compile: traced predict function}; weak, so a dropped model frees its graph
_FUNCTIONS = weakref.WeakKeyDictionary()


def _structure(model):
    """`model.input` (a tensor, list or dict); a Sequential model never called has only `inputs`."""
    try:
        return model.input
    except (AttributeError, ValueError):
        inputs = list(model.inputs or [])
        return inputs[0] if len(inputs) == 1 else inputs


def _numeric(array):
    return isinstance(array, np.ndarray) and (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    )


def _cast(array):
    """Keras's rule for numpy inputs: floats other than floatx become floatx."""
    if np.issubdtype(array.dtype, np.floating) and array.dtype != np.dtype(keras.backend.floatx()):
        return array.astype(keras.backend.floatx())
    return array


def supports(model, x, predict_kwargs):
    """Whether `predict_in_memory(model, x, **predict_kwargs)` can stand in for `model.predict`."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    if tf.distribute.has_strategy() or getattr(model, "kfuse_strategy", None) is not None:
        return False
    if any(key not in ACCEPTED for key in predict_kwargs) or model.run_eagerly:
        return False
    arrays = flatten(x)
    if not arrays or not all(_numeric(a) and a.ndim >= 1 for a in arrays):
        return False
    if len({len(a) for a in arrays}) != 1 or len(arrays[0]) == 0:
        return False
    specs = flatten(_structure(model))
    if len(specs) != len(arrays):
        return False
    if isinstance(x, dict) and isinstance(_structure(model), dict) and set(x) != set(_structure(model)):
        return False
    # the input's dtype must be what Keras would feed (else Keras's own casts apply)
    return all(
        np.dtype(_cast(a).dtype) == np.dtype(keras.backend.standardize_dtype(s.dtype))
        for a, s in zip(_ordered(x, model), specs, strict=True)
    )


def _ordered(x, model):
    """The arrays of `x` in the order of `model.input`."""
    if isinstance(x, dict) and isinstance(_structure(model), dict):
        return [x[k] for k in _structure(model)]
    if isinstance(x, dict):
        names = [t.name for t in flatten(_structure(model))]
        if set(names) == set(x):
            return [x[k] for k in names]
        return list(x.values())
    return flatten(x)


def _function(model):
    """The cached traced forward pass of `model` (one per `jit_compile` setting)."""
    import tensorflow as tf

    jit = bool(model.jit_compile) if model.compiled else False
    functions = _FUNCTIONS.setdefault(model, {})
    if jit not in functions:
        specs = [
            tf.TensorSpec((None, *tuple(s.shape)[1:]), keras.backend.standardize_dtype(s.dtype))
            for s in flatten(_structure(model))
        ]
        structure = _structure(model)
        ref = weakref.ref(model)  # no strong reference from the cache back to its key

        def forward(*tensors):
            if isinstance(structure, dict):
                inputs = dict(zip(structure, tensors, strict=True))
            elif isinstance(structure, (list, tuple)):
                inputs = list(tensors)
            else:
                inputs = tensors[0]
            return ref()(inputs, training=False)

        functions[jit] = tf.function(forward, input_signature=specs, jit_compile=jit, autograph=False)
    return functions[jit]


def predict_in_memory(model, x, batch_size=None, verbose="auto", callbacks=None):
    """`model.predict(x, batch_size, verbose, callbacks)` on numpy arrays, the same result.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.trainers.predict_loop import predict_in_memory

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    x = np.random.default_rng(0).normal(size=(50, 4)).astype("float32")
    out = predict_in_memory(model, x, batch_size=16, verbose=0)
    bool(np.array_equal(out, model.predict(x, batch_size=16, verbose=0)))  # True
    ```
    """
    import tensorflow as tf

    arrays = [np.ascontiguousarray(_cast(a)) for a in _ordered(x, model)]
    rows = len(arrays[0])
    batch_size = int(batch_size or 32)
    steps = -(-rows // batch_size)
    function = _function(model)
    if not isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks = keras.callbacks.CallbackList(
            callbacks, add_progbar=verbose != 0, verbose=verbose, epochs=1, steps=steps, model=model
        )
    model.stop_predicting = False
    callbacks.on_predict_begin()
    outputs = []
    for step in range(steps):
        callbacks.on_predict_batch_begin(step)
        rows_ = slice(step * batch_size, (step + 1) * batch_size)
        batch = function(*[a[rows_] for a in arrays])
        outputs.append(tf.nest.map_structure(lambda t: t.numpy(), batch))
        callbacks.on_predict_batch_end(step, {"outputs": batch})
        if model.stop_predicting:
            break
    callbacks.on_predict_end()
    return tf.nest.map_structure(lambda *parts: np.concatenate(parts, axis=0), *outputs)
