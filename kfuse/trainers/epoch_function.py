"""`EpochFunction`: one epoch of a Keras model (shuffle, training steps, validation) as ONE
traced TensorFlow function, and where a model keeps it (`epoch_function_of`).

The loop around it (callbacks, History, which models qualify) is `kfuse.trainers.epoch_loop`; the
K fold models of one base share one (`kfuse.trainers.shared_fit`).
"""

import contextlib


class EpochFunction:
    """One epoch of `model` (shuffle, every training step, the validation pass), traced once.

    The rows are arguments, not constants of the graph, with the row count left open,
    so one trace serves every call on rows of the same feature shapes: the K fold
    models of one base, trained one after another in one model's variables
    (`kfuse.trainers.shared_fit`), pay for one trace, not K.
    """

    def __init__(self, model, batch_size, shuffle=True, validation_batch_size=None, graph_rewrites=True):
        self.model = model
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.validation_batch_size = int(validation_batch_size or batch_size)
        self.graph_rewrites = bool(graph_rewrites)
        self._functions = {}

    @property
    def traces(self):
        """How many traced functions this epoch has needed (one per structure of rows)."""
        return len(self._functions)

    def serves(self, model, batch_size, shuffle=True, validation_batch_size=None, graph_rewrites=True):
        return (
            model is self.model
            and bool(graph_rewrites) == self.graph_rewrites
            and int(batch_size) == self.batch_size
            and bool(shuffle) == self.shuffle
            and int(validation_batch_size or batch_size) == self.validation_batch_size
        )

    def __call__(self, epoch, seed, data, validation):
        import tensorflow as tf

        specs = tf.nest.map_structure(
            lambda t: tf.TensorSpec((None,) + tuple(t.shape[1:]), t.dtype), (data, validation)
        )
        key = repr(specs)
        if key not in self._functions:
            # autograph=False: the loops are tf.while_loop already, so tracing need not
            # convert Keras's own train_step code (a good part of a short fit's fixed cost)
            self._functions[key] = tf.function(
                self._epoch,
                input_signature=[tf.TensorSpec((), tf.int64), tf.TensorSpec((), tf.int64), *specs],
                autograph=False,
            )
        if self.graph_rewrites:
            return self._functions[key](epoch, seed, data, validation)
        with _without_graph_rewrites():
            return self._functions[key](epoch, seed, data, validation)

    def _epoch(self, epoch, seed, data, validation):
        import tensorflow as tf

        model = self.model
        model.reset_metrics()
        if self.shuffle:
            order = tf.random.experimental.stateless_shuffle(
                tf.range(tf.shape(data[1])[0]), seed=tf.stack([seed, epoch])
            )
            data = tf.nest.map_structure(lambda t: tf.gather(t, order), data)
        _loop(model.train_step, data[0], data[1], self.batch_size, data[2] if len(data) == 3 else None)
        logs = model.get_metrics_result()
        if not validation:
            return logs, {}
        with tf.control_dependencies(tf.nest.flatten(logs)):
            model.reset_metrics()
        _loop(model.test_step, validation[0], validation[1], self.validation_batch_size)
        return logs, model.get_metrics_result()


@contextlib.contextmanager
def _without_graph_rewrites():
    """TensorFlow's graph optimiser (Grappler) off while the epoch function runs.

    Grappler rewrites a function's graph when it is first called: for the small layers
    above cached branch outputs (a tuning trial's or a Stacker's top) that pass costs
    about as much as the epochs it would speed up, and a new top per trial pays it every
    trial. The setting is TensorFlow's global, public one
    (`tf.config.optimizer.set_experimental_options`); it is put back on exit, and every
    call of one function runs under the same setting, so the function is optimised (or
    not) once. Not for use while other threads run TensorFlow functions.
    """
    import tensorflow as tf

    before = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": before})


def _loop(step_function, x, y, batch_size, weights=None):
    """Run `step_function((x_batch, y_batch[, w_batch]))` over consecutive batches (in a graph)."""
    import tensorflow as tf

    n = tf.shape(y)[0]

    def body(i):
        rows = slice(i * batch_size, (i + 1) * batch_size)
        batch = (tf.nest.map_structure(lambda t: t[rows], x), y[rows])
        step_function(batch if weights is None else batch + (weights[rows],))
        return (i + 1,)

    steps = (n + batch_size - 1) // batch_size
    tf.while_loop(lambda i: i < steps, body, (tf.constant(0),))


#: where `fit` keeps a model's traced epoch, as Model.fit keeps its train function: a
#: model trained again (boosting's reused trainer network) is not traced again
EPOCH_FUNCTION_ATTRIBUTE = "_kfuse_epoch_function"


def epoch_function_of(model, fit_kwargs, graph_rewrites=True):
    """The model's cached `EpochFunction` for these settings (a new one after a compile)."""
    batch_size = int(fit_kwargs.get("batch_size") or 32)
    shuffle = fit_kwargs.get("shuffle", True)
    validation_batch_size = fit_kwargs.get("validation_batch_size")
    cached = getattr(model, EPOCH_FUNCTION_ATTRIBUTE, None)
    # the trace holds the optimizer and loss it was made with: a re-compile starts afresh
    if cached is not None:
        optimizer, loss, function = cached
        if (
            optimizer is model.optimizer
            and loss is model.loss
            and function.serves(model, batch_size, shuffle, validation_batch_size, graph_rewrites)
        ):
            return function
    function = EpochFunction(model, batch_size, shuffle, validation_batch_size, graph_rewrites)
    # object.__setattr__: a plain attribute, outside Keras's layer and variable tracking
    object.__setattr__(model, EPOCH_FUNCTION_ATTRIBUTE, (model.optimizer, model.loss, function))
    return function
