"""`SideBySide`: models of one architecture trained together, in ONE traced epoch function.

The K fold models (and the refit) of one base are small, and their training steps are bound
by TensorFlow's per-op cost: one model's step leaves a second core mostly idle. Here a few
of them (two by default, `GROUP`) train side by side in one graph: the one epoch kernel,
`kfuse.trainers.epoch_function.EpochFunction`, with K copies, each in a
`kfuse.trainers.worker.Worker`. Each copy runs its own
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
settings for every copy: a fit whose route (`kfuse.trainers.jobs.route`) is "together".
`kfuse.trainers.schedule.Scheduler` pairs such fits; anything else trains one at a time.
"""

import keras
import numpy as np

from kfuse.trainers import epoch_loop
from kfuse.trainers.epoch_function import EpochFunction
from kfuse.trainers.jobs import TOGETHER, route
from kfuse.trainers.worker import Worker

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
    """Whether a prepared fit can train side by side with others of its architecture (its
    route, `kfuse.trainers.jobs.route`, is ``"together"`` where pairing is on)."""
    return route(model, x, y, settings, group=2) == TOGETHER


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
        self.workers = []  # the compiled models the copies train in (`Worker.model`)
        self._workers_of = []
        self._functions = {}

    def trains(self, model):
        """Whether `model` is of the architecture of the workers made already."""
        return bool(self._workers_of) and self._workers_of[0].fits(model)

    def fits(self, models, settings):
        """Whether these models can train together here (same architecture, settings)."""
        if len(models) < 2 or not _same_settings(settings):
            return False
        self._workers(len(models))
        return all(self._workers_of[0].fits(m) for m in models)

    def fit(self, models, data, seeds, settings):
        """Train each model on its own `(x, y)` of `data` from its seed, together.

        `settings`: one dict of fit settings (epochs, batch_size, shuffle), or one per
        model (equal apart from `sample_weight`). Returns one `History` per model.
        """
        if isinstance(settings, dict):
            settings = [settings] * len(models)
        if not self.fits(models, settings):
            raise ValueError("SideBySide.fit: the models differ in architecture or fit settings")
        return self._train(models, data, seeds, settings)

    def fit_one(self, model, data, seed, settings):
        """Train one model in a group epoch traced before, the other copies given no rows
        (they idle: each copy skips the steps past its last batch), so a last model without a
        partner pays for no trace of its own. Returns its `History`, or None where no group
        epoch of these settings was traced or the model does not fit the workers."""
        batch_size, shuffle = int(settings.get("batch_size") or 32), bool(settings.get("shuffle", True))
        counts = [k[0] for k in self._functions if k[1:] == (batch_size, shuffle)]
        if not counts or not self._workers_of[0].fits(model):
            return None
        x, y = data
        idle = (epoch_loop.take_rows(x, slice(0, 0)), y[:0])
        weights = settings.get("sample_weight")
        idle_settings = dict(settings, sample_weight=None if weights is None else np.zeros(0, "float32"))
        count = min(counts)
        histories = self._train([model] + [None] * (count - 1), [data] + [idle] * (count - 1),
                                [seed] + [0] * (count - 1), [settings] + [idle_settings] * (count - 1))
        return histories[0]

    def _train(self, models, data, seeds, settings):
        """Train `models` (None: an idle copy, given no rows) in the group epoch of their count."""
        workers = self._workers_of[: len(models)]
        rows = []
        for worker, model, (x, y), s in zip(workers, models, data, settings, strict=True):
            if model is not None:
                worker.load(model)
            rows.append((x, y) if s.get("sample_weight") is None else (x, y, np.asarray(s["sample_weight"], "float32")))
        batch_size = int(settings[0].get("batch_size") or 32)
        key = (len(models), batch_size, bool(settings[0].get("shuffle", True)))
        if key not in self._functions:
            self._functions[key] = EpochFunction([w.model for w in workers], batch_size, key[2])
        histories = epoch_loop.train_epochs(self._functions[key], rows, seeds, int(settings[0].get("epochs", 1)))
        for worker, model, history in zip(workers, models, histories, strict=True):
            if model is not None:
                worker.store(model)
                history.set_model(model)
        return [h for h, m in zip(histories, models, strict=True) if m is not None]

    def _workers(self, count):
        while len(self._workers_of) < count:
            self._workers_of.append(Worker(self.make_worker()))
            self.workers.append(self._workers_of[-1].model)
