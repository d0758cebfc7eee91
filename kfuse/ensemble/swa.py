"""Stochastic weight averaging (Izmailov et al. 2018): ONE network, not an ensemble.

The running average of the weights at each epoch end of the SWA phase, then
BatchNormalization statistics recomputed with one pass over the training data.
"""

import keras
import numpy as np

from kfuse.ensemble import base
from kfuse.ensemble.assemble import weighted_graph
from kfuse.ensemble.one_run import OneRun, make_optimizer
from kfuse.ensemble.run_state import RunState
from kfuse.inputs.selection import row_count, take
from kfuse.trainers.members import fit_member


def batchnorm_layers(model):
    """Every BatchNormalization layer of a model, nested models included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(batchnorm_layers(layer))
    return found


def recompute_batchnorm(model, x, batch_size=256):
    """Reset BatchNorm moving statistics and set them to their average over `x`'s batches.

    Moving mean 0 and variance 1, then batch k updates with momentum (k - 1) / k, which
    gives the cumulative average of the batch statistics (one pass, as Izmailov et al.).
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, "float32"))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, "float32"))
    for k, start in enumerate(range(0, row_count(x), batch_size), start=1):
        for layer in layers:
            layer.momentum = (k - 1) / k
        model(take(x, slice(start, start + batch_size)), training=True)
    for layer, momentum in zip(layers, saved, strict=True):
        layer.momentum = momentum
    return len(layers)


class SWA(OneRun):
    """Stochastic weight averaging: ONE network with the average of the SWA-phase weights.

    Train `warmup_epochs` with the optimizer the builder compiled (at
    `warmup_learning_rate` when given), then `swa_epochs` at the constant
    `swa_learning_rate`; after each SWA epoch w_swa <- (w_swa * n + w) / (n + 1) over the
    trainable weights. The averaged weights are set, and BatchNorm statistics recomputed
    on the training data. The averaging phase REPLACES the compiled optimizer's learning
    rate (a fresh optimizer of the same class and settings at `swa_learning_rate`), and an
    `OptimizerReplacedWarning` names the compiled optimizer. A builder that compiles
    nothing gets Adam at 1e-3.

    With `work_dir`, the run's state is saved after every epoch (`RunState`: the
    network's and optimizer's variables, the running average and its count, the phase
    and epoch reached, atomically); a second `fit` with the same configuration and data
    continues from the last finished epoch and ends with the same weights as a run
    never interrupted (on the in-memory epoch loop, the default for numpy data, whose
    shuffling depends only on the seed and the epoch; runs that go through `Model.fit`
    resume with other shuffles). A work_dir of another configuration is refused.

    Args:
        estimator (Callable | keras.Model): one builder or `keras.Model` with trainable weights.
        warmup_epochs (int): epochs of ordinary training before averaging starts.
        swa_epochs (int): epochs of the averaging phase (one average update per epoch).
        warmup_learning_rate (float | None): the learning rate of the first phase (None: the
            compiled optimizer's).
        swa_learning_rate (float): the constant learning rate of the averaging phase.
        optimizer: deprecated; compile the builder's network with it.
        batch_size (int): rows per step.
        fit_params (dict | None): as for `SnapshotEnsemble`.
        random_state (int | None): as for `SnapshotEnsemble`.
        verbose (int): as for `SnapshotEnsemble`.
        work_dir (str | os.PathLike | None): as for `SnapshotEnsemble`.
        epochs: deprecated spelling of `warmup_epochs`.
        learning_rate: deprecated spelling of `warmup_learning_rate`.

    Fitted attributes: `model_` (one-branch graph, branch `member_0`), `network_` (the
    averaged Keras network), `n_averaged_`, `classes_`.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.ensemble import SWA

    x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)
    build = lambda: keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    swa = SWA(build, warmup_epochs=1, swa_epochs=2, batch_size=20).fit(x, y)
    swa.n_averaged_  # 2
    ```
    """

    renamed = {"epochs": "warmup_epochs", "learning_rate": "warmup_learning_rate"}
    rates = ("warmup_learning_rate", "learning_rate", "swa_learning_rate")

    def __init__(self, estimator, warmup_epochs=10, swa_epochs=5, warmup_learning_rate=None, swa_learning_rate=5e-4,
                 optimizer=None, batch_size=32, fit_params=None, random_state=None, verbose=0, work_dir=None,
                 epochs=None, learning_rate=None):
        super().__init__(estimator, epochs, batch_size, fit_params, random_state, verbose, work_dir)
        self.warmup_epochs = warmup_epochs
        self.swa_epochs = swa_epochs
        self.warmup_learning_rate = warmup_learning_rate
        self.learning_rate = learning_rate
        self.swa_learning_rate = swa_learning_rate
        self.optimizer = optimizer

    def _fit(self, x, y, claims):
        who = self._who()
        swa_epochs = base.check_positive_int(self.swa_epochs, "swa_epochs", who)
        epochs = self._warmup_epochs()
        model, target, compiled = self._setup(y)
        if not model.trainable_weights:
            raise ValueError(f"{who}: the network '{model.name}' has no trainable weights, so there is "
                             "nothing to average; unfreeze it (model.trainable = True)")
        # the shuffling seed of each phase, drawn from the state new_member seeded
        seeds = [int(np.random.randint(2**31 - 1)), int(np.random.randint(2**31 - 1))]
        store = self._open_store(claims, x, y)
        run = RunState(store)
        state = run.load()
        settings, bar = self._fit_settings(own=("batch_size",)), self._progress(swa_epochs)
        batch_size, settings = settings.batch_size, settings.member(0)
        warm, optimizer = self._warmup(compiled, "replaces the learning rate by swa_learning_rate="
                                                 f"{float(self.swa_learning_rate):g} for the averaging phase")
        average, n = None, 0
        if state is not None and state["phase"] == "swa":
            average, n = list(state["average"]), int(state["n"])
        if epochs and (state is None or state["phase"] == "pre"):
            model.compile(optimizer=make_optimizer(optimizer, warm, who), loss=model.loss, jit_compile=False)
            done = 0
            if state is not None:
                run.restore(model, state, who)
                done = state["epoch"]
            save = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: run.save(model, "pre", epoch + 1))
            if done < epochs:
                fit_member(model, x, target, dict(settings, epochs=epochs, initial_epoch=done, seed=seeds[0]),
                                callbacks=[save])
        model.compile(optimizer=make_optimizer(optimizer, float(self.swa_learning_rate), who), loss=model.loss,
                      jit_compile=False)
        if state is not None and state["phase"] == "swa":
            run.restore(model, state, who)
        bar.update(n)

        def average_and_save(epoch, logs):
            nonlocal average, n
            current = [keras.ops.convert_to_numpy(v) for v in model.trainable_weights]
            average = current if average is None else [(a * n + w) / (n + 1) for a, w in zip(average, current, strict=True)]
            n += 1
            run.save(model, "swa", epoch + 1, average=average, n=n)
            bar.update(n)

        if n < swa_epochs:
            fit_member(model, x, target, dict(settings, epochs=swa_epochs, initial_epoch=n, seed=seeds[1]),
                            callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=average_and_save)])
        for variable, value in zip(model.trainable_weights, average, strict=True):
            variable.assign(value)
        recompute_batchnorm(model, x, batch_size=batch_size)
        self.n_averaged_ = n
        self.network_ = model
        self.estimators_ = [model]
        self.model_ = weighted_graph([model], [1.0], self.task_, name="swa")
        return self
