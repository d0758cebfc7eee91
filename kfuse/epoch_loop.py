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
(`FusedModel.fit_head`, the Stacker, cached tuner trials). Use the loop through
`supports()`: the TensorFlow backend, the default distribution strategy,
numpy data, no `sample_weight` or `class_weight`. Anything else goes to `Model.fit`.
"""

import keras
import numpy as np

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
    arrays = _flatten(x) + [y]
    validation = fit_kwargs.get("validation_data")
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            return False
        arrays += _flatten(validation[0]) + [validation[1]]
    return all(isinstance(a, np.ndarray) for a in arrays) and not model.run_eagerly


def _flatten(x):
    if isinstance(x, dict):
        return list(x.values())
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _rows(x):
    return len(_flatten(x)[0])


def _take(x, rows):
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
):
    """Train a compiled `model` like `model.fit(x, y, ...)`; returns the `History`.

    Same batches and updates as `Model.fit` with `shuffle=False`; with `shuffle=True`
    the rows are permuted every epoch from `seed` (default: drawn from numpy's global
    state, so `keras.utils.set_random_seed` makes runs repeatable, as with `Model.fit`).

    Example:

    ```python
    import keras, numpy as np
    from kfuse.epoch_loop import fit_in_memory

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = fit_in_memory(model, np.ones((64, 4), "float32"), np.zeros(64), epochs=3)
    len(history.history["loss"])  # 3
    ```
    """
    import tensorflow as tf

    if validation_split and validation_data is None:
        # Keras's rule: the LAST fraction of the rows, taken before any shuffling
        n = _rows(x)
        cut = int(n * (1.0 - validation_split))
        validation_data = (_take(x, slice(cut, None)), y[cut:])
        x, y = _take(x, slice(0, cut)), y[:cut]
    batch_size = int(batch_size or 32)
    n = _rows(x)
    steps = -(-n // batch_size)
    train_x = tf.nest.map_structure(tf.constant, x)
    train_y = tf.constant(y)
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    if seed is None:  # from numpy's global state, which keras.utils.set_random_seed seeds
        seed = np.random.randint(2**31 - 1)
    seed = int(seed)

    validation = None
    if validation_data is not None:
        val_x, val_y = validation_data
        validation = (
            tf.nest.map_structure(tf.constant, val_x),
            tf.constant(val_y),
            int(validation_batch_size or batch_size),
        )

    _build_state(model, x, y)

    # One traced function per epoch: shuffle, every training step, then the validation
    # pass. autograph=False: the loops are tf.while_loop already, so tracing need not
    # convert Keras's own train_step code (a good part of a search trial's fixed cost).
    @tf.function(autograph=False)
    def run_epoch(epoch):
        model.reset_metrics()
        if shuffle:
            key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
            order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=key)
            xs = tf.nest.map_structure(lambda t: tf.gather(t, order), train_x)
            ys = tf.gather(train_y, order)
        else:
            xs, ys = train_x, train_y
        _loop(model.train_step, xs, ys, batch_size)
        logs = model.get_metrics_result()
        if validation is None:
            return logs, {}
        with tf.control_dependencies(tf.nest.flatten(logs)):
            model.reset_metrics()
        _loop(model.test_step, *validation)
        return logs, model.get_metrics_result()

    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList(
        list(callbacks or []) + [history],
        add_progbar=verbose != 0,
        model=model,
        verbose=verbose,
        epochs=epochs,
        steps=steps,
    )
    model.stop_training = False
    callback_list.on_train_begin()
    logs = {}
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        train_logs, val_logs = run_epoch(tf.constant(epoch))
        logs = {**_numpy(train_logs), **{"val_" + k: v for k, v in _numpy(val_logs).items()}}
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return history


def _build_state(model, x, y):
    """Create the compiled loss's and metrics' variables now, eagerly, on one row.

    Keras builds them on the first train step; inside the traced epoch that means
    variables created during tracing, and TensorFlow then traces the whole epoch a second
    time (half of a short fit's fixed cost). `Model.fit` avoids it the same way, by
    building them before its first step. One eager forward pass in inference mode (no
    dropout draw, no BatchNormalization update), then the metrics are reset: the
    training that follows is unchanged.
    """
    rows = slice(0, 1)
    x1, y1 = _take(x, rows), y[rows]
    y_pred = model(x1, training=False)
    model.compute_loss(x=x1, y=y1, y_pred=y_pred)
    model.compute_metrics(x1, y1, y_pred, sample_weight=None)
    model.reset_metrics()


def _loop(step_function, x, y, batch_size):
    """Run `step_function((x_batch, y_batch))` over consecutive batches (in a graph)."""
    import tensorflow as tf

    n = tf.shape(y)[0]

    def body(i):
        rows = slice(i * batch_size, (i + 1) * batch_size)
        step_function((tf.nest.map_structure(lambda t: t[rows], x), y[rows]))
        return (i + 1,)

    steps = (n + batch_size - 1) // batch_size
    tf.while_loop(lambda i: i < steps, body, (tf.constant(0),))


def _numpy(logs):
    return {k: float(v) for k, v in logs.items()}


def fit_top(top, x, y, seed=None, **fit_kwargs):
    """Train the compiled `top` on in-memory arrays; returns the Keras `History`.

    One traced call per epoch where it applies (`supports`); otherwise `top.fit`.
    `seed` fixes the shuffling order of the in-memory loop.
    """
    if supports(top, x, y, fit_kwargs):
        return fit_in_memory(top, x, y, seed=seed, **fit_kwargs)
    return top.fit(x, y, **fit_kwargs)


def compile_top(top, model, metrics=None, **compile_kwargs):
    """Compile `top` with `model`'s optimizer and loss (and `metrics`, fresh objects)."""
    top.compile(
        optimizer=model.optimizer,
        loss=model.loss,
        metrics=metrics,
        steps_per_execution=STEPS_PER_EXECUTION,
        **compile_kwargs,
    )
    return top
