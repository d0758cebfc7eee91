"""One training run, several members: snapshot ensembles, fast geometric ensembling, SWA.

Snapshot (Huang et al. 2017): lr(t) = lr0 / 2 * (cos(pi * mod(t, T/M) / (T/M)) + 1) per
step, Keras's `CosineDecayRestarts(t_mul=1.0, m_mul=1.0)`, one snapshot at the end of
each of the M cycles. Fast geometric ensembling (Garipov et al. 2018): after a warm-up,
triangular cycles between `lr_1` and `lr_2`, a snapshot at each minimum. SWA (Izmailov et
al. 2018): the running average of the weights at each epoch end of the SWA phase, then
BatchNormalization statistics recomputed with one pass over the training data; ONE network.
"""

import math

import keras
import numpy as np

from kfuse.ensemble import base
from kfuse.ensemble.assemble import weighted_graph
from kfuse.ensemble.run_state import RunState


@keras.saving.register_keras_serializable(package="kfuse_ensemble")
class TriangularCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Garipov et al.'s cyclic rate: t = (mod(step, c) + 1) / c; lr_1 -> lr_2 -> lr_1.

    lr = (1 - 2t) lr_1 + 2t lr_2 for t <= 1/2, (2 - 2t) lr_2 + (2t - 1) lr_1 after.

    Example:

    ```python
    from kfuse.ensemble.snapshots import TriangularCycle

    float(TriangularCycle(0.05, 1e-4, cycle_steps=4)(1))  # 1e-4: the minimum, mid-cycle
    ```
    """

    def __init__(self, lr_1, lr_2, cycle_steps):
        self.lr_1 = float(lr_1)
        self.lr_2 = float(lr_2)
        self.cycle_steps = int(cycle_steps)

    def __call__(self, step):
        t = (keras.ops.mod(keras.ops.cast(step, "float32"), self.cycle_steps) + 1.0) / self.cycle_steps
        down = (1 - 2 * t) * self.lr_1 + 2 * t * self.lr_2
        up = (2 - 2 * t) * self.lr_2 + (2 * t - 1) * self.lr_1
        return keras.ops.where(t <= 0.5, down, up)

    def get_config(self):
        return {"lr_1": self.lr_1, "lr_2": self.lr_2, "cycle_steps": self.cycle_steps}


def _optimizer(name, learning_rate, who):
    try:
        return keras.optimizers.get({"class_name": name, "config": {"learning_rate": learning_rate}})
    except (ValueError, TypeError) as error:
        raise ValueError(f"{who}: unknown optimizer {name!r} ({error}); use e.g. 'adam' or 'sgd'") from error


def _copy(model):
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _cycle_seeds(count):
    """One shuffling seed per phase or cycle, drawn from the state `new_member` seeded, so a
    resumed run shuffles every cycle as the uninterrupted run did."""
    return [int(np.random.randint(2**31 - 1)) for _ in range(count)]


def _finished_cycles(run, model, who, state=None):
    """Cycles finished in an earlier run of this work_dir; their end state is restored.

    The run state is written after each cycle's snapshot, so a crash between the two
    leaves the cycle counted unfinished: it is trained again from the previous cycle's
    end, with its own seed, and its snapshot is overwritten with the same weights."""
    state = run.load() if state is None else state
    if state is None or state["phase"] != "cycle":
        return 0
    run.restore(model, state, who)
    return state["epoch"]


class _OneRun(base.BaseEnsemble):
    def _setup(self, x, y):
        who = self._who()
        y = base.check_xy(x, y, who)
        if isinstance(self.estimator, (list, tuple)):
            raise TypeError(f"{who} trains ONE network; give one builder or keras.Model, not a list")
        spec = base.spec_list(self.estimator, who)[0]
        self.task_ = "classification" if base.is_classification_labels(y) else "regression"
        if self.task_ == "classification":
            self.classes_ = np.unique(y)
            target = np.searchsorted(self.classes_, y)
        else:
            target = y.astype("float32")
        model = base.new_member(spec, self._seed(0), self.task_, who, 0)
        return model, target

    def _fit_settings(self):
        settings = base.member_fit_settings(self.fit_params, 0, self._who())
        for key in ("epochs", "initial_epoch"):
            if key in settings:
                raise ValueError(f"{self._who()}: set `{key}` through the ensemble's own arguments, not fit_params")
        settings.setdefault("batch_size", self.batch_size)
        return settings

    def _steps(self, x):
        return math.ceil(base.n_rows(x) / self.batch_size)


class SnapshotEnsemble(_OneRun):
    """Snapshot ensemble: one run of `epochs` with M = `n_estimators` cosine cycles.

    Args:
        estimator: one builder callable or `keras.Model` (its loss is kept; the
            optimizer is `optimizer` with the cosine schedule).
        n_estimators: cycles = snapshots; must divide `epochs`.
        epochs, batch_size, learning_rate (lr0), optimizer (a Keras optimizer name).
        fit_params, random_state, verbose, work_dir: as for `BaggingClassifier`. With
            `work_dir`, the network's and optimizer's variables are saved after every
            cycle (`RunState`); a second `fit` continues after the last finished cycle and
            ends with the snapshots of a run never interrupted (each cycle shuffles from
            its own seed; on the in-memory epoch loop, the default for numpy data).

    Fitted attributes: `model_` (average of the snapshots' probabilities, or outputs for
    regression), `estimators_` (the snapshots), `learning_rates_` (lr per step), `classes_`.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.ensemble import SnapshotEnsemble

    x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)
    build = lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    snap = SnapshotEnsemble(build, n_estimators=2, epochs=2, batch_size=20).fit(x, y)
    len(snap.estimators_)  # 2
    ```
    """

    def __init__(self, estimator, n_estimators=5, epochs=10, batch_size=32, learning_rate=0.1,
                 optimizer="sgd", fit_params=None, random_state=None, verbose=0, work_dir=None):
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.fit_params = fit_params
        self.random_state = random_state
        self.verbose = verbose
        self.work_dir = work_dir

    def fit(self, x, y):
        """Train the one network and keep a snapshot per cycle; returns self."""
        who = self._who()
        m = base.check_positive_int(self.n_estimators, "n_estimators", who)
        epochs = base.check_positive_int(self.epochs, "epochs", who)
        if epochs % m:
            close = [d for d in range(1, epochs + 1) if epochs % d == 0]
            raise ValueError(f"{who}: {m} cycles do not divide epochs={epochs}; give n_estimators in {close} "
                             f"or epochs a multiple of {m} (e.g. {m * max(1, round(epochs / m))})")
        model, target = self._setup(x, y)
        seeds = _cycle_seeds(m)
        per_cycle = epochs // m
        cycle_steps = per_cycle * self._steps(x)
        schedule = keras.optimizers.schedules.CosineDecayRestarts(
            float(self.learning_rate), first_decay_steps=cycle_steps, t_mul=1.0, m_mul=1.0, alpha=0.0)
        self.learning_rates_ = np.asarray([float(schedule(s)) for s in range(epochs * self._steps(x))])
        model.compile(optimizer=_optimizer(self.optimizer, schedule, who), loss=model.loss, jit_compile=False)
        store = base.MemberStore(self.work_dir, self._fingerprint(x, y), who)
        run = RunState(store.path)
        done = _finished_cycles(run, model, who)
        settings, bar, snaps = self._fit_settings(), self._progress(m), []
        for c in range(m):
            if c < done:
                snap, _ = store.load(c)
            else:
                base.fit_member(model, x, target, dict(settings, epochs=per_cycle, seed=seeds[c]))
                snap = _copy(model)
                store.save(c, snap)
                run.save(model, "cycle", c + 1)
            snaps.append(snap)
            bar.update(c + 1)
        self.estimators_ = snaps
        self.model_ = weighted_graph(snaps, [1.0] * m, self.task_, name="snapshot_ensemble")
        return self


class FastGeometricEnsemble(_OneRun):
    """Fast geometric ensembling: `epochs` of warm-up, then triangular cycles, M snapshots.

    The cycle lasts `cycle` epochs (even); lr goes lr_1 -> lr_2 -> lr_1 per step; a
    snapshot is taken at each minimum (mid-cycle), so the cyclic phase is
    cycle/2 + (M - 1) * cycle epochs. torchensemble's defaults: lr_1 5e-2, lr_2 1e-4, cycle 4.

    Args:
        estimator: one builder or `keras.Model`; n_estimators: snapshots.
        epochs: warm-up epochs at `learning_rate` with `optimizer`.
        cycle, lr_1, lr_2: the cyclic phase (same optimizer class).
        batch_size, fit_params, random_state, verbose, work_dir: as for `SnapshotEnsemble`.

    Fitted attributes: `model_`, `estimators_`, `classes_`.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.ensemble import FastGeometricEnsemble

    x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)
    build = lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    fge = FastGeometricEnsemble(build, n_estimators=2, epochs=1, cycle=2, batch_size=20).fit(x, y)
    ```
    """

    def __init__(self, estimator, n_estimators=5, epochs=10, cycle=4, lr_1=5e-2, lr_2=1e-4,
                 batch_size=32, learning_rate=1e-3, optimizer="adam", fit_params=None,
                 random_state=None, verbose=0, work_dir=None):
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.epochs = epochs
        self.cycle = cycle
        self.lr_1 = lr_1
        self.lr_2 = lr_2
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.fit_params = fit_params
        self.random_state = random_state
        self.verbose = verbose
        self.work_dir = work_dir

    def fit(self, x, y):
        """Warm up, cycle, snapshot at each minimum; returns self."""
        who = self._who()
        m = base.check_positive_int(self.n_estimators, "n_estimators", who)
        cycle = base.check_positive_int(self.cycle, "cycle", who)
        if cycle % 2:
            raise ValueError(f"{who}: `cycle`={cycle} epochs must be even (a snapshot at mid-cycle); try {cycle + 1}")
        model, target = self._setup(x, y)
        seeds = _cycle_seeds(m + 1)  # the warm-up's, then each cycle's
        settings, bar = self._fit_settings(), self._progress(m)
        store = base.MemberStore(self.work_dir, self._fingerprint(x, y), who)
        run = RunState(store.path)
        state = run.load()
        model.compile(optimizer=_optimizer(self.optimizer, float(self.learning_rate), who), loss=model.loss, jit_compile=False)
        if self.epochs and state is None:
            base.fit_member(model, x, target, dict(settings, epochs=int(self.epochs), seed=seeds[0]))
            run.save(model, "warm-up", 0)
        schedule = TriangularCycle(self.lr_1, self.lr_2, cycle * self._steps(x))
        # the cyclic phase starts with a new optimizer, in a resumed run as in the first
        model.compile(optimizer=_optimizer(self.optimizer, schedule, who), loss=model.loss, jit_compile=False)
        if state is not None and state["phase"] == "warm-up":
            run.restore(model, state, who, optimizer=False)
        done = _finished_cycles(run, model, who, state)
        snaps = []
        for c in range(m):
            if c < done:
                snap, _ = store.load(c)
            else:
                base.fit_member(model, x, target, dict(settings, epochs=cycle // 2 if c == 0 else cycle, seed=seeds[c + 1]))
                snap = _copy(model)
                store.save(c, snap)
                run.save(model, "cycle", c + 1)
            snaps.append(snap)
            bar.update(c + 1)
        self.estimators_ = snaps
        self.model_ = weighted_graph(snaps, [1.0] * m, self.task_, name="fast_geometric")
        return self


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
    n = base.n_rows(x)
    for k, start in enumerate(range(0, n, batch_size), start=1):
        for layer in layers:
            layer.momentum = (k - 1) / k
        model(base.take(x, np.arange(start, min(start + batch_size, n))), training=True)
    for layer, momentum in zip(layers, saved, strict=True):
        layer.momentum = momentum
    return len(layers)


class SWA(_OneRun):
    """Stochastic weight averaging: ONE network with the average of the SWA-phase weights.

    Train `epochs` at `learning_rate`, then `swa_epochs` at `swa_learning_rate`; after
    each SWA epoch w_swa <- (w_swa * n + w) / (n + 1) over the trainable weights. The
    averaged weights are set, and BatchNorm statistics recomputed on the training data.

    With `work_dir`, the run's state is saved after every epoch (`RunState`: the
    network's and optimizer's variables, the running average and its count, the phase
    and epoch reached, atomically); a second `fit` with the same configuration and data
    continues from the last finished epoch and ends with the same weights as a run
    never interrupted (on the in-memory epoch loop, the default for numpy data, whose
    shuffling depends only on the seed and the epoch; runs that go through `Model.fit`
    resume with other shuffles). A work_dir of another configuration is refused.

    Args:
        estimator: one builder or `keras.Model` with trainable weights.
        epochs, swa_epochs, learning_rate, swa_learning_rate, optimizer, batch_size.
        fit_params, random_state, verbose, work_dir: as for `SnapshotEnsemble`.

    Fitted attributes: `model_` (one-branch graph, branch `member_0`), `network_` (the
    averaged Keras network), `n_averaged_`, `classes_`.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.ensemble import SWA

    x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)
    build = lambda: keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    swa = SWA(build, epochs=1, swa_epochs=2, batch_size=20).fit(x, y)
    swa.n_averaged_  # 2
    ```
    """

    def __init__(self, estimator, epochs=10, swa_epochs=5, learning_rate=1e-3, swa_learning_rate=5e-4,
                 optimizer="adam", batch_size=32, fit_params=None, random_state=None, verbose=0, work_dir=None):
        self.estimator = estimator
        self.epochs = epochs
        self.swa_epochs = swa_epochs
        self.learning_rate = learning_rate
        self.swa_learning_rate = swa_learning_rate
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.fit_params = fit_params
        self.random_state = random_state
        self.verbose = verbose
        self.work_dir = work_dir

    def fit(self, x, y):
        """Train, average the SWA phase's weights, recompute BatchNorm; returns self."""
        who = self._who()
        swa_epochs = base.check_positive_int(self.swa_epochs, "swa_epochs", who)
        epochs = int(self.epochs or 0)
        if isinstance(self.epochs, bool) or epochs < 0:
            raise ValueError(f"{who}: `epochs` must be an integer >= 0; received {self.epochs!r}")
        model, target = self._setup(x, y)
        if not model.trainable_weights:
            raise ValueError(f"{who}: the network '{model.name}' has no trainable weights, so there is "
                             "nothing to average; unfreeze it (model.trainable = True)")
        # the shuffling seed of each phase, drawn from the state new_member seeded
        seeds = [int(np.random.randint(2**31 - 1)), int(np.random.randint(2**31 - 1))]
        store = base.MemberStore(self.work_dir, self._fingerprint(x, y), who)
        run = RunState(store.path)
        state = run.load()
        settings, bar = self._fit_settings(), self._progress(swa_epochs)
        average, n = None, 0
        if state is not None and state["phase"] == "swa":
            average, n = list(state["average"]), int(state["n"])
        if epochs and (state is None or state["phase"] == "pre"):
            model.compile(optimizer=_optimizer(self.optimizer, float(self.learning_rate), who), loss=model.loss,
                          jit_compile=False)
            done = 0
            if state is not None:
                run.restore(model, state, who)
                done = state["epoch"]
            save = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: run.save(model, "pre", epoch + 1))
            if done < epochs:
                base.fit_member(model, x, target, dict(settings, epochs=epochs, initial_epoch=done, seed=seeds[0]),
                                callbacks=[save])
        model.compile(optimizer=_optimizer(self.optimizer, float(self.swa_learning_rate), who), loss=model.loss,
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
            base.fit_member(model, x, target, dict(settings, epochs=swa_epochs, initial_epoch=n, seed=seeds[1]),
                            callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=average_and_save)])
        for variable, value in zip(model.trainable_weights, average, strict=True):
            variable.assign(value)
        recompute_batchnorm(model, x, batch_size=self.batch_size)
        self.n_averaged_ = n
        self.network_ = model
        self.estimators_ = [model]
        self.model_ = weighted_graph([model], [1.0], self.task_, name="swa")
        return self
