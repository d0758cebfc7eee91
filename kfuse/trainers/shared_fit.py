"""`SharedFit`: the fold models of one base trained in turn through ONE traced epoch function.

Out-of-fold stacking trains K + 1 models of one architecture (K folds and the refit).
Trained through `Model.fit` or `epoch_loop.fit_in_memory`, each pays for tracing its own
training graph, about a second each for a small CNN or GRU: most of a short fit. Here
one worker model of the architecture holds the variables the traced function updates:
for each fold, the fold model's fresh variables (weights, BatchNorm statistics, dropout
seed state) are copied into the worker, its optimizer is put back to its untrained
state, the epochs run on the fold's rows, and the trained variables are copied back
into the fold model. Each fold model thus trains exactly as it would alone through
`fit_in_memory` (the same initial weights, optimizer state, batches, shuffling and
dropout stream), and only the first pays for tracing.

It applies where `epoch_loop.supports` does and the branch does not re-adapt its
preprocessing per fold (adapted vocabularies live in lookup tables, not variables).
Anything else trains the fold model itself. `FitPool` does the same for members of
several architectures (a heterogeneous bagging ensemble): one worker per architecture.
"""

import numpy as np

from kfuse.trainers import epoch_loop, kept
from kfuse.trainers.epoch_function import EpochFunction
from kfuse.trainers.worker import Worker, copy_compiled, same_architecture


class SharedFit:
    """Train models of one architecture one after another in one worker's variables.

    Args:
        make_worker: a callable returning a new compiled model of the architecture; called
            once, at the first `fit` that can share. None: a copy of the first model
            trained (its preprocessing state kept, compiled from its compile config).

    Example:

    ```python
    import keras, numpy as np
    from kfuse.trainers.shared_fit import SharedFit

    def build():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    shared = SharedFit(build)
    x, y = np.ones((40, 4), "float32"), np.zeros(40)
    folds = [build(), build()]
    for model in folds:
        shared.fit(model, x, y, seed=0, epochs=2, batch_size=8)
    ```
    """

    def __init__(self, make_worker=None):
        self.make_worker = make_worker
        self.worker = None  # the compiled model the fits train in (`Worker.model`)
        self._worker = None
        self.epoch_function = None
        self._holding = None

    def fits(self, model):
        """Whether `model` can train in this one's worker (made already)."""
        return self._worker is not None and self._worker.fits(model)

    def holds(self, model):
        """Whether the worker's variables are `model`'s trained ones (its last shared fit)."""
        return model is not None and self._holding is model

    def fit(self, model, x, y, seed=None, **fit_kwargs):
        """Train `model` like `epoch_loop.fit(model, x, y, seed=seed, **fit_kwargs)`."""
        self._holding = None
        if not epoch_loop.supports(model, x, y, fit_kwargs) or not self._start(model):
            return epoch_loop.fit(model, x, y, seed=seed, **fit_kwargs)
        return self.train(model, x, y, seed, fit_kwargs)

    def train(self, model, x, y, seed, fit_kwargs):
        """`fit` for a model known to qualify for the fast loop (`epoch_loop.supports`);
        one that cannot train in the worker (`ready`) trains itself."""
        self._holding = None
        if not self._start(model):
            return epoch_loop.fit_fast(model, x, y, seed, fit_kwargs)
        self._worker.load(model)
        if seed is None:  # as fit_in_memory draws it
            seed = np.random.randint(2**31 - 1)
        worker = self.worker
        batch_size = int(fit_kwargs.get("batch_size") or 32)
        shuffle = fit_kwargs.get("shuffle", True)
        validation_batch_size = fit_kwargs.get("validation_batch_size")
        if self.epoch_function is None or not self.epoch_function.serves(worker, batch_size, shuffle, validation_batch_size):
            self.epoch_function = EpochFunction(worker, batch_size, shuffle, validation_batch_size)
        history = epoch_loop.fit_in_memory(worker, x, y, seed=seed, epoch_function=self.epoch_function, **fit_kwargs)
        self._worker.store(model)
        self._holding = model
        return history

    def ready(self, model):
        """Make the worker now, in the calling thread; whether `model` can train in it.

        Building the worker draws from the global random state, so a caller that trains
        in other threads makes it here, in the thread that seeds that state.
        """
        return self._start(model)

    def _start(self, model):
        """Make the worker on first use; whether `model` can train in its variables."""
        if self._worker is None:
            worker = self.make_worker() if self.make_worker is not None else copy_compiled(model)
            if worker is None:
                return False
            self._worker = Worker(worker)
            self.worker = worker
        return self._worker.fits(model)


class FitPool:
    """`SharedFit`s for models of several architectures: each model trains in the worker
    of its own architecture (a new one for an architecture not seen before).

    Example:

    ```python
    import keras, numpy as np
    from kfuse.trainers.shared_fit import FitPool

    def build(units):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units), keras.layers.Dense(2)])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    pool = FitPool()
    x, y = np.ones((40, 4), "float32"), np.zeros(40)
    for units in (3, 5, 3):
        pool.fit(build(units), x, y, seed=0, epochs=1, batch_size=8)
    len(pool.shared)  # 2: one worker per architecture
    ```
    """

    def __init__(self):
        self.shared = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.release()
        return False

    def release(self):
        """Hand the workers to `kfuse.trainers.kept`: a later fit of these architectures
        in this process trains in them without a copy or a trace of its own."""
        shared, self.shared = self.shared, []
        for one in shared:
            one._holding = None  # its model is no longer this pool's to hand back
            kept.give_back("shared_fit", one, one.worker)

    def fit(self, model, x, y, seed=None, **fit_kwargs):
        """Train `model` like `SharedFit.fit`, in the worker of its architecture."""
        if not epoch_loop.supports(model, x, y, fit_kwargs):
            return model.fit(x, y, **fit_kwargs)
        return self.train(model, x, y, seed, fit_kwargs)

    def train(self, model, x, y, seed, fit_kwargs):
        """`fit` for a model known to qualify for the fast loop (`epoch_loop.supports`)."""
        shared = self._shared_for(model)
        if shared is None:  # its compile settings do not copy: it trains itself
            return epoch_loop.fit_fast(model, x, y, seed, fit_kwargs)
        return shared.train(model, x, y, seed, fit_kwargs)

    def _shared_for(self, model):
        """The worker of `model`'s architecture: this pool's, one a finished fit kept
        (`kfuse.trainers.kept`), or a new one (None where its compile settings do not copy)."""
        for shared in self.shared:
            if same_architecture(shared.worker, model):
                return shared
        shared = kept.take("shared_fit", lambda one: one.fits(model)) or SharedFit()
        if not shared.ready(model):
            return None
        self.shared.append(shared)
        return shared
