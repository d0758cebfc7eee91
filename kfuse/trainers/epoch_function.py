"""`EpochFunction`: one epoch of K >= 1 Keras models (shuffle, training steps, validation) as
ONE traced TensorFlow function (the engine's one epoch kernel), and where a model keeps it
(`epoch_function_of`).

The loop around it (callbacks, History, which models qualify) is `kfuse.trainers.epoch_loop`
(`train_epochs`); the fold models of one base share one (`kfuse.trainers.shared_fit`, K = 1),
and a few train side by side in one (`kfuse.trainers.side_by_side`, K = 2).
"""

import contextlib

from kfuse.utils.quiet import quiet_tensorflow


class EpochFunction:
    """One epoch of K >= 1 models of one architecture (shuffle, every training step, the
    validation pass), traced once: THE epoch kernel of kfuse's training loops.

    `models`: one model, or a list of K copies trained side by side in one graph (each runs
    its own `train_step` on its own shuffled rows, so TensorFlow's inter-op threads run
    them at once; a copy with fewer rows skips the steps past its last batch). The rows
    are arguments, not constants of the graph, with the row count left open, so one trace
    serves every call on rows of the same feature shapes: the fold models of one base,
    trained one after another in one worker's variables (`kfuse.trainers.shared_fit`), pay for one
    trace, not one each. Validation data only with one model.
    """

    def __init__(self, models, batch_size, shuffle=True, validation_batch_size=None, graph_rewrites=True):
        self.models = list(models) if isinstance(models, (list, tuple)) else [models]
        self.model = self.models[0]
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
            and len(self.models) == 1
            and bool(graph_rewrites) == self.graph_rewrites
            and int(batch_size) == self.batch_size
            and bool(shuffle) == self.shuffle
            and int(validation_batch_size or batch_size) == self.validation_batch_size
        )

    def __call__(self, epoch, seeds, feeds, validation=()):
        """One epoch: `seeds` (K int64 shuffling seeds), `feeds` (K row tuples `(x, y[, w])`);
        returns `(train logs of each model, validation logs of the one model or {})`."""
        import tensorflow as tf

        specs = tf.nest.map_structure(
            lambda t: tf.TensorSpec((None,) + tuple(t.shape[1:]), t.dtype), (tuple(feeds), tuple(validation))
        )
        key = repr(specs)
        first = key not in self._functions
        if first:
            # autograph=False: the loops are tf.while_loop already, so tracing need not
            # convert Keras's own train_step code (a good part of a short fit's fixed cost)
            self._functions[key] = tf.function(
                self._epoch,
                input_signature=[tf.TensorSpec((), tf.int64), tf.TensorSpec((len(self.models),), tf.int64), *specs],
                autograph=False,
            )
        # every EpochFunction traces the same Python method, which TensorFlow counts as one
        # function retraced ("triggered tf.function retracing"): each traces once, by design
        quiet = quiet_tensorflow() if first else contextlib.nullcontext()
        rewrites = contextlib.nullcontext() if self.graph_rewrites else _without_graph_rewrites()
        with quiet, rewrites:
            return self._functions[key](epoch, seeds, tuple(feeds), tuple(validation))

    def _epoch(self, epoch, seeds, feeds, validation):
        import tensorflow as tf

        for model in self.models:
            model.reset_metrics()
        parts, steps = [], []
        for k, rows in enumerate(feeds):
            n = tf.shape(rows[1])[0]
            if self.shuffle:
                order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([seeds[k], epoch]))
                rows = tf.nest.map_structure(lambda t, order=order: tf.gather(t, order), rows)
            parts.append(rows)
            steps.append((n + self.batch_size - 1) // self.batch_size)
        _loop([m.train_step for m in self.models], parts, steps, self.batch_size)
        logs = [model.get_metrics_result() for model in self.models]
        if not validation:
            return logs, {}
        if len(self.models) > 1:
            raise ValueError("EpochFunction: validation data is for one model, not models side by side")
        model = self.model
        with tf.control_dependencies(tf.nest.flatten(logs)):
            model.reset_metrics()
        rows = validation[0], validation[1]
        _loop([model.test_step], [rows], [(tf.shape(rows[1])[0] + self.validation_batch_size - 1)
                                          // self.validation_batch_size], self.validation_batch_size)
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


def _loop(step_functions, parts, steps, batch_size):
    """Run `step_functions[k]` over consecutive batches of `parts[k]` (row tuples) in one
    graph loop; copy k stops after `steps[k]` batches (one copy: no condition per step)."""
    import tensorflow as tf

    def body(i):
        batch = slice(i * batch_size, (i + 1) * batch_size)
        for step_function, rows, count in zip(step_functions, parts, steps, strict=True):
            def step(step_function=step_function, rows=rows):
                step_function(tuple(tf.nest.map_structure(lambda t: t[batch], r) for r in rows))
                return tf.constant(0)

            if len(parts) == 1:
                step()
            else:
                tf.cond(i < count, step, lambda: tf.constant(0))
        return (i + 1,)

    last = steps[0] if len(steps) == 1 else tf.reduce_max(tf.stack(steps))
    tf.while_loop(lambda i: i < last, body, (tf.constant(0),))


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
