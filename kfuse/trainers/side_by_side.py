"""`SideBySide`: models of one architecture trained together, in ONE traced epoch function.

The K fold models (and the refit) of one base are small, and their training steps are bound
by TensorFlow's per-op cost: one model's step leaves a second core mostly idle. Here a few
of them (two by default, `GROUP`) train side by side in one graph. Each copy runs its own
`train_step` on its own shuffled batches, so the copies share no tensor and TensorFlow's
inter-op threads run them at once. A copy with fewer rows (the refit beside a fold, or
folds of unequal size) skips the steps past its last batch.

Each copy trains exactly as it would alone through `kfuse.trainers.shared_fit.SharedFit` (the same
initial variables, optimizer state, batches, shuffling and dropout stream; tested
bit-identical). Measured on 2 cores with the demo bases (5 folds and the refit): the GRU in
0.52x the time of one after another, the CNN in 0.73x. Six copies in one graph were not
faster: tracing grows with the copies (see the README's speed section).

It applies where `SharedFit` does (`epoch_loop.supports`, no re-adapted preprocessing), and
only for fits without callbacks, progress output or validation data, with the same
settings for every copy. `groupable` says which; anything else trains one at a time.
"""

import keras
import numpy as np

from kfuse.trainers import epoch_loop

#: copies per traced epoch (2: measured best on 2 cores; more copies trace longer)
GROUP = 2


def group_size():
    """Copies per traced epoch here: `GROUP`, or 1 where TensorFlow runs one op at a time
    (one core, or `tf.config.threading.set_inter_op_parallelism_threads(1)`)."""
    import os

    if (os.cpu_count() or 1) < 2:
        return 1
    if keras.backend.backend() != "tensorflow":
        return GROUP  # TensorFlow's thread settings do not apply (it may not be installed)
    import tensorflow as tf

    return 1 if tf.config.threading.get_inter_op_parallelism_threads() == 1 else GROUP


def groupable(model, x, y, settings):
    """Whether a prepared fit can train side by side with others of its architecture."""
    return (
        epoch_loop.supports(model, x, y, settings)
        and not settings.get("callbacks")
        and not settings.get("verbose")
        and settings.get("validation_data") is None
        and not settings.get("validation_split")
        and not settings.get("initial_epoch")
    )


def _same_settings(settings):
    def key(s):
        return tuple(sorted((k, repr(v)) for k, v in s.items() if k != "sample_weight"))

    first = key(settings[0])
    weighted = [s.get("sample_weight") is not None for s in settings]
    return all(key(s) == first for s in settings) and (all(weighted) or not any(weighted))


class SideBySide:
    """Train models of one architecture together, each in a worker's variables.

    Args:
        make_worker: a callable returning a new compiled model of the architecture (one
            per copy, made on first use).

    Example:

    ```python
    import keras, numpy as np
    from kfuse.trainers.side_by_side import SideBySide

    def build():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    rng = np.random.default_rng(0)
    models = [build(), build()]
    data = [(rng.normal(size=(40, 4)).astype("float32"), np.zeros(40)),
            (rng.normal(size=(30, 4)).astype("float32"), np.ones(30))]
    SideBySide(build).fit(models, data, seeds=[1, 2], settings={"epochs": 2, "batch_size": 8})
    ```
    """

    def __init__(self, make_worker):
        self.make_worker = make_worker
        self.workers = []
        self._untrained = []
        self._functions = {}

    def fits(self, models, settings):
        """Whether these models can train together here (same architecture, settings)."""
        from kfuse.trainers.shared_fit import _same_architecture

        if len(models) < 2 or not _same_settings(settings):
            return False
        self._workers(len(models))
        return all(_same_architecture(self.workers[0], m) for m in models)

    def fit(self, models, data, seeds, settings):
        """Train each model on its own `(x, y)` of `data` from its seed, together.

        `settings`: one dict of fit settings (epochs, batch_size, shuffle), or one per
        model (equal apart from `sample_weight`). Returns one `History` per model.
        """
        import tensorflow as tf

        if isinstance(settings, dict):
            settings = [settings] * len(models)
        if not self.fits(models, settings):
            raise ValueError("SideBySide.fit: the models differ in architecture or fit settings")
        workers = self.workers[: len(models)]
        epochs = int(settings[0].get("epochs", 1))
        batch_size = int(settings[0].get("batch_size") or 32)
        shuffle = bool(settings[0].get("shuffle", True))
        feeds = []
        for worker, untrained, model, (x, y), s in zip(workers, self._untrained, models, data, settings, strict=False):
            for target, source in zip(worker.variables, model.variables, strict=True):
                target.assign(source)
            for variable, value in zip(worker.optimizer.variables, untrained, strict=True):
                variable.assign(value)
            epoch_loop._build_state(worker, x, y)
            rows = (x, y) if s.get("sample_weight") is None else (x, y, np.asarray(s["sample_weight"], "float32"))
            feeds.append(tf.nest.map_structure(tf.constant, rows))
        function = self._function(len(models), batch_size, shuffle, feeds)
        seeds = tf.constant([int(s) for s in seeds], tf.int64)
        histories = []
        for model in models:
            history = keras.callbacks.History()
            history.set_model(model)
            history.on_train_begin()
            histories.append(history)
        for epoch in range(epochs):
            logs = function(tf.constant(epoch, tf.int64), seeds, tuple(feeds))
            for history, copy_logs in zip(histories, logs, strict=True):
                history.on_epoch_end(epoch, {k: float(v) for k, v in copy_logs.items()})
        for worker, model in zip(workers, models, strict=False):
            for target, source in zip(model.variables, worker.variables, strict=True):
                target.assign(source)
        return histories

    def _workers(self, count):
        while len(self.workers) < count:
            worker = self.make_worker()
            worker.optimizer.build(worker.trainable_variables)
            self._untrained.append([np.array(v.numpy()) for v in worker.optimizer.variables])
            self.workers.append(worker)

    def _function(self, count, batch_size, shuffle, feeds):
        import tensorflow as tf

        specs = tf.nest.map_structure(lambda t: tf.TensorSpec((None,) + tuple(t.shape[1:]), t.dtype), tuple(feeds))
        key = (count, batch_size, shuffle, repr(specs))
        if key not in self._functions:
            workers = self.workers[:count]

            def epoch(epoch, seeds, feeds):
                for worker in workers:
                    worker.reset_metrics()
                parts, steps = [], []
                for k, rows in enumerate(feeds):
                    n = tf.shape(rows[1])[0]
                    if shuffle:  # as `EpochFunction` shuffles one model's rows
                        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([seeds[k], epoch]))
                        rows = tf.nest.map_structure(lambda t, order=order: tf.gather(t, order), rows)
                    parts.append(rows)
                    steps.append((n + batch_size - 1) // batch_size)

                def body(i):
                    batch = slice(i * batch_size, (i + 1) * batch_size)
                    for k, worker in enumerate(workers):
                        def step(worker=worker, rows=parts[k]):
                            worker.train_step(tuple(tf.nest.map_structure(lambda t: t[batch], r) for r in rows))
                            return tf.constant(0)

                        tf.cond(i < steps[k], step, lambda: tf.constant(0))
                    return (i + 1,)

                tf.while_loop(lambda i: i < tf.reduce_max(tf.stack(steps)), body, (tf.constant(0),))
                return [worker.get_metrics_result() for worker in workers]

            # autograph=False: the loops are tf.while_loop already (as in `EpochFunction`)
            self._functions[key] = tf.function(
                epoch,
                input_signature=[tf.TensorSpec((), tf.int64), tf.TensorSpec((count,), tf.int64), specs],
                autograph=False,
            )
        return self._functions[key]
