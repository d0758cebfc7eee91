"""`fit_in_memory`: `Model.fit` for small models on in-memory arrays, one graph call per epoch.

The top of a stack (fusion, meta-learner, head) trained on cached branch outputs is a few
thousand weights; `Model.fit` then spends its time in Python, not arithmetic: building a
data iterator every epoch and dispatching every step (about 60 ms per epoch and 4 ms per
step here, against well under 1 ms of arithmetic per step). `fit_in_memory` keeps the rows
in memory as tensors and runs each epoch (shuffle, every training step, then the
validation pass) as ONE traced TensorFlow function that calls the model's own
`train_step` and `test_step`, so the loss, regularisers, optimizer and metrics are
exactly those `compile` set. Epoch-level callbacks (History, EarlyStopping,
ModelCheckpoint, KerasTuner's) run as usual; batch-level hooks are not called, as with
`steps_per_execution` equal to an epoch.

`fit_top` and `compile_top` are how kfuse trains `model.top` on cached branch outputs
(`FusedModel.fit_head`, the Stacker, cached tuner trials); `fit` is how the Stacker and
the ensembles train their bases and members (the same loop: a small Keras base on a few
thousand rows pays as much in per-step dispatch as in arithmetic). Use the loop through
`supports()`: the TensorFlow backend, the default distribution strategy, numpy data, no
`class_weight`, no `jit_compile` or `run_eagerly`. Anything else goes to `Model.fit`.
"""

import keras
import numpy as np

from kfuse.trainers.epoch_function import EPOCH_FUNCTION_ATTRIBUTE, EpochFunction, epoch_function_of  # noqa: F401

#: `Model.fit` on the top, where the in-memory loop does not apply: steps per traced call
STEPS_PER_EXECUTION = 32
#: `Model.fit` arguments the in-memory loop understands; any other one means `Model.fit`
ACCEPTED = {
    "epochs",
    "batch_size",
    "shuffle",
    "validation_data",
    "validation_split",
    "validation_batch_size",
    "callbacks",
    "initial_epoch",
    "verbose",
    "sample_weight",
}


def supports(model, x, y, fit_kwargs):
    """Whether `fit_in_memory(model, x, y, **fit_kwargs)` can stand in for `model.fit`."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    # a model built under a strategy scope keeps it; it must train through `Model.fit`
    if tf.distribute.has_strategy() or getattr(model, "_distribute_strategy", None) is not None:
        return False
    if any(key not in ACCEPTED for key in fit_kwargs):
        return False
    if fit_kwargs.get("shuffle", True) not in (True, False):
        return False  # "batch" shuffling
    if _compiled_with_jit(model):
        return False  # Model.fit compiles its train function with XLA; this loop does not
    if any(_has_batch_hooks(c) for c in fit_kwargs.get("callbacks") or []):
        return False  # the loop calls epoch-level hooks only
    arrays = flatten(x) + [y]
    if fit_kwargs.get("sample_weight") is not None:
        arrays.append(fit_kwargs["sample_weight"])
    validation = fit_kwargs.get("validation_data")
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            return False
        arrays += flatten(validation[0]) + [validation[1]]
    return all(isinstance(a, np.ndarray) for a in arrays) and not model.run_eagerly


BATCH_HOOKS = (
    "on_batch_begin",
    "on_batch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
)


#: a wrapping callback (kfuse's `_Redirect`) names the callback it forwards to here, so
#: the loop judges the batch hooks of what runs, not the wrapper's forwarding ones
WRAPPED_CALLBACK_ATTRIBUTE = "kfuse_wrapped_callback"


def _has_batch_hooks(callback):
    """Whether `callback` does anything per batch (a hook overridden, or set as LambdaCallback does)."""
    wrapped = getattr(callback, WRAPPED_CALLBACK_ATTRIBUTE, None)
    if wrapped is not None:
        return _has_batch_hooks(wrapped)
    tuner = getattr(callback, "tuner", None)
    for name in BATCH_HOOKS:
        hook = getattr(callback, name)
        if getattr(hook, "__func__", None) is getattr(keras.callbacks.Callback, name):
            continue
        # KerasTuner's TunerCallback forwards its batch hooks to the tuner, whose own are
        # no-ops unless a Tuner subclass overrides them
        owner = type(tuner) if tuner is not None and type(callback).__name__ == "TunerCallback" else None
        if owner is not None and _tuner_hook_is_noop(owner, name):
            continue
        return True
    return False


def _tuner_hook_is_noop(tuner_class, name):
    if name not in ("on_batch_begin", "on_batch_end"):
        return False
    import keras_tuner

    return getattr(tuner_class, name, None) is getattr(keras_tuner.Tuner, name)


def _compiled_with_jit(model):
    try:
        return model.jit_compile is True
    except AttributeError:  # not compiled yet
        return False


def flatten(x):
    """The arrays of `x` (one array, a list / tuple, or a dict of named arrays) as a list."""
    if isinstance(x, dict):
        return list(x.values())
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _rows(x):
    return len(flatten(x)[0])


def take_rows(x, rows):
    """Rows `rows` of `x` (one array, a list / tuple, or a dict of named arrays)."""
    if isinstance(x, dict):
        return {k: v[rows] for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [v[rows] for v in x]
    return x[rows]


def fit_in_memory(
    model,
    x,
    y,
    epochs=1,
    batch_size=None,
    shuffle=True,
    validation_data=None,
    validation_split=0.0,
    validation_batch_size=None,
    callbacks=None,
    initial_epoch=0,
    verbose=0,
    seed=None,
    sample_weight=None,
    epoch_function=None,
):
    """Train a compiled `model` like `model.fit(x, y, ...)`; returns the `History`.

    Same batches and updates as `Model.fit` with `shuffle=False`; with `shuffle=True`
    the rows are permuted every epoch from `seed` (default: drawn from numpy's global
    state, so `keras.utils.set_random_seed` makes runs repeatable, as with `Model.fit`).
    `sample_weight` (one weight per row) reaches `train_step` as `Model.fit` passes it.
    `epoch_function` (an `EpochFunction` of this model) reuses a function traced before,
    for other rows of the same shapes: tracing is most of a short fit's time.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.trainers.epoch_loop import fit_in_memory

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = fit_in_memory(model, np.ones((64, 4), "float32"), np.zeros(64), epochs=3)
    len(history.history["loss"])  # 3
    ```
    """
    if validation_split and validation_data is None:
        # Keras's rule: the LAST fraction of the rows, taken before any shuffling
        n = _rows(x)
        cut = int(n * (1.0 - validation_split))
        validation_data = (take_rows(x, slice(cut, None)), y[cut:])
        x, y = take_rows(x, slice(0, cut)), y[:cut]
        if sample_weight is not None:
            sample_weight = sample_weight[:cut]
    batch_size = int(batch_size or 32)
    rows = (x, y) if sample_weight is None else (x, y, np.asarray(sample_weight, "float32"))
    validation = () if validation_data is None else tuple(validation_data)
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    if seed is None:  # from numpy's global state, which keras.utils.set_random_seed seeds
        seed = np.random.randint(2**31 - 1)
    if epoch_function is None:
        epoch_function = EpochFunction(model, batch_size, shuffle, validation_batch_size)
    elif not epoch_function.serves(model, batch_size, shuffle, validation_batch_size, epoch_function.graph_rewrites):
        raise ValueError("fit_in_memory: epoch_function was made for another model or batch settings")
    steps = -(-_rows(x) // batch_size)
    (history,) = train_epochs(epoch_function, [rows], [seed], epochs, initial_epoch, callbacks, verbose,
                              steps, validation)
    return history


def train_epochs(epoch_function, data, seeds, epochs, initial_epoch=0, callbacks=None, verbose=0, steps=None,
                 validation=()):
    """Run `epoch_function` (K models) for the epochs; returns one `History` per model.

    `data`: K row tuples `(x, y[, sample_weight])` of numpy arrays, `seeds`: K shuffling
    seeds. The loss's and metrics' variables are built first (`build_state`); epoch-level
    `callbacks`, the progress bar and `validation` belong to the first model (side by
    side, K > 1, none is given). Every call of this module's loops goes through here.
    """
    import tensorflow as tf

    models = epoch_function.models
    for model, rows in zip(models, data, strict=True):
        if len(rows[1]):  # a copy given no rows (`SideBySide.fit_one`) idles: built before
            build_state(model, rows[0], rows[1])
    feeds = tuple(tf.nest.map_structure(tf.constant, tuple(rows)) for rows in data)
    validation = tf.nest.map_structure(tf.constant, tuple(validation))
    seeds = tf.constant([int(s) for s in seeds], tf.int64)
    histories, lists = [], []
    for k, model in enumerate(models):
        histories.append(keras.callbacks.History())
        first = k == 0
        lists.append(keras.callbacks.CallbackList(
            (list(callbacks or []) if first else []) + [histories[-1]],
            add_progbar=first and verbose != 0, model=model, verbose=verbose if first else 0, epochs=epochs,
            steps=steps,
        ))
        model.stop_training = False
        lists[-1].on_train_begin()
    logs = [{} for _ in models]
    for epoch in range(initial_epoch, epochs):
        for callback_list in lists:
            callback_list.on_epoch_begin(epoch)
        train_logs, val_logs = epoch_function(tf.constant(epoch, tf.int64), seeds, feeds, validation)
        logs = [_numpy(t) for t in train_logs]
        logs[0].update({"val_" + k: v for k, v in _numpy(val_logs).items()})
        for callback_list, copy_logs in zip(lists, logs, strict=True):
            callback_list.on_epoch_end(epoch, copy_logs)
        if any(model.stop_training for model in models):
            break
    for callback_list, copy_logs in zip(lists, logs, strict=True):
        callback_list.on_train_end(copy_logs)
    return histories


def build_state(model, x, y):
    """Create the compiled loss's and metrics' variables now, eagerly, on one row.

    Keras builds them on the first train step; inside the traced epoch that means
    variables created during tracing, and TensorFlow then traces the whole epoch a second
    time (half of a short fit's fixed cost). `Model.fit` avoids it the same way, by
    building them before its first step. One eager forward pass in inference mode (no
    dropout draw, no BatchNormalization update), then the metrics are reset: the
    training that follows is unchanged.
    """
    rows = slice(0, 1)
    x1, y1 = take_rows(x, rows), y[rows]
    y_pred = model(x1, training=False)
    model.compute_loss(x=x1, y=y1, y_pred=y_pred)
    model.compute_metrics(x1, y1, y_pred, sample_weight=None)
    model.reset_metrics()


def _numpy(logs):
    return {k: float(v) for k, v in logs.items()}


def fit(model, x, y, seed=None, **fit_kwargs):
    """Train the compiled `model` on in-memory arrays; returns the Keras `History`.

    One traced call per epoch where it applies (`supports`); otherwise `model.fit` with
    the same arguments. `seed` fixes the shuffling order of the in-memory loop.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.trainers import epoch_loop

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = np.ones((40, 4), "float32"), np.zeros(40)
    epoch_loop.fit(model, x, y, epochs=2, batch_size=8, sample_weight=np.ones(40))
    ```
    """
    return _fit(model, x, y, seed, True, fit_kwargs)


def _fit(model, x, y, seed, graph_rewrites, fit_kwargs):
    if supports(model, x, y, fit_kwargs):
        return fit_fast(model, x, y, seed, fit_kwargs, graph_rewrites)
    return model.fit(x, y, **fit_kwargs)


def fit_fast(model, x, y, seed, fit_kwargs, graph_rewrites=True):
    """`fit_in_memory` through the model's cached `EpochFunction`, for a fit already known
    to qualify (`supports`): the route decided once, by the caller."""
    function = epoch_function_of(model, fit_kwargs, graph_rewrites)
    return fit_in_memory(model, x, y, seed=seed, epoch_function=function, **fit_kwargs)


def fit_top(top, x, y, seed=None, **fit_kwargs):
    """Train the compiled `top` on in-memory arrays (`fit`); returns the Keras `History`.

    As `fit`, with TensorFlow's graph optimiser off for the top's epoch function
    (`kfuse.trainers.epoch_function`: a small graph, traced anew for every top)."""
    return _fit(top, x, y, seed, False, fit_kwargs)


def steps_per_execution():
    """`STEPS_PER_EXECUTION`, or 1 on PyTorch (whose Keras trainer takes no other value)."""
    return 1 if keras.backend.backend() == "torch" else STEPS_PER_EXECUTION


def compile_top(top, model, metrics=None, **compile_kwargs):
    """Compile `top` with `model`'s optimizer and loss (and `metrics`, fresh objects)."""
    top.compile(
        optimizer=model.optimizer,
        loss=model.loss,
        metrics=metrics,
        steps_per_execution=steps_per_execution(),
        **compile_kwargs,
    )
    return top
