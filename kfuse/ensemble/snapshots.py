"""One training run, several members: snapshot ensembles and fast geometric ensembling.

Snapshot (Huang et al. 2017): lr(t) = lr0 / 2 * (cos(pi * mod(t, T/M) / (T/M)) + 1) per
step, Keras's `CosineDecayRestarts(t_mul=1.0, m_mul=1.0)`, one snapshot at the end of
each of the M cycles. Fast geometric ensembling (Garipov et al. 2018): after a warm-up,
triangular cycles between `lr_1` and `lr_2`, a snapshot at each minimum. SWA, the one-network
relative, is in `kfuse.ensemble.swa`.
"""

import keras
import numpy as np

from kfuse.ensemble import base
from kfuse.ensemble.assemble import weighted_graph
from kfuse.ensemble.one_run import OneRun, make_optimizer, steps_per_epoch
from kfuse.ensemble.run_state import RunState
from kfuse.trainers.members import NetworkCopy, copy_network, fit_member


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


@keras.saving.register_keras_serializable(package="kfuse_ensemble")
class WarmUpThenCycle(keras.optimizers.schedules.LearningRateSchedule):
    """FGE's two phases in ONE schedule: `lr` while `cyclic` is 0, `cycle(step)` after.

    One optimizer, one trace for the whole run (a second compile traced the epoch again:
    0.4 s of a 2.8 s fit). The cyclic phase starts from a fresh optimizer as before:
    `FastGeometricEnsemble.fit` puts the optimizer's variables (step count, moments) back
    to their built values and sets `cyclic` to 1, a variable the traced step reads
    (TensorFlow; other backends compile twice). The snapshots' compile config carries it
    with the phase they were taken in.

    Example:

    ```python
    from kfuse.ensemble.snapshots import TriangularCycle, WarmUpThenCycle

    rate = WarmUpThenCycle(1e-3, TriangularCycle(0.05, 1e-4, cycle_steps=4))
    float(rate(1))  # 1e-3: the warm-up
    rate.cyclic.assign(1.0)
    float(rate(1))  # 1e-4: the cycle's minimum
    ```
    """

    def __init__(self, lr, cycle, cyclic=0.0):
        self.lr = float(lr)
        self.cycle = cycle
        self.cyclic = keras.Variable(float(cyclic), trainable=False, name="fge_cyclic_phase")

    def __call__(self, step):
        return keras.ops.where(self.cyclic > 0, self.cycle(step), self.lr)

    def get_config(self):
        return {"lr": self.lr, "cycle": keras.saving.serialize_keras_object(self.cycle),
                "cyclic": float(keras.ops.convert_to_numpy(self.cyclic))}

    @classmethod
    def from_config(cls, config):
        return cls(config["lr"], keras.saving.deserialize_keras_object(config["cycle"]), config.get("cyclic", 0.0))


#: where FGE keeps the `WarmUpThenCycle` a network was compiled with (Keras has no public
#: reader of an optimizer's schedule object): a plain attribute, outside Keras's tracking
PHASE_ATTRIBUTE = "_kfuse_fge_schedule"


def _phase(network):
    """The `WarmUpThenCycle` schedule `network` was compiled with (TensorFlow's FGE run)."""
    return getattr(network, PHASE_ATTRIBUTE)


def _start_cycles(worker, network):
    """FGE's cyclic phase on TensorFlow: the worker's optimizer back to its untrained state
    (step count, moments), and its schedule's `cyclic` switch on."""
    worker.reset_optimizer()
    _phase(network).cyclic.assign(1.0)


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


class _Snapshots(OneRun):
    """What snapshot ensembles and FGE share: the cycles of one run, a snapshot after each."""

    def _snapshots(self, model, x, target, cycles, done, run, name, bar=None):
        """Train `model` through the `cycles` (each one's member fit settings) not `done` in
        an earlier run, copy it after each (kept in the run's store), and set `estimators_`
        and `model_` (the snapshots' average, graph `name`); returns self."""
        bar, snaps = bar or self._progress(len(cycles)), []
        for c, settings in enumerate(cycles):
            if c < done:
                snap, _ = base.load_member(run.store, c)
            else:
                fit_member(model, x, target, settings)
                snap = copy_network(model)
                run.store.save(base.member(c), snap)
                run.save(model, "cycle", c + 1)
            snaps.append(snap)
            bar.update(c + 1)
        self._set_members(snaps, name)
        return self

    def _set_members(self, snaps, name):
        """`model_` on the snapshots' own layers, frozen there (they are copies this fit
        made), and `estimators_` copied out of them on first access, trainable as
        trained: one copy per snapshot instead of two, a third of a small fit's time. A
        snapshot that is not a functional or Sequential model is copied into the graph."""
        later = [NetworkCopy.of(snap) for snap in snaps]
        adopt = all(c is not None for c in later)
        self._estimators, self._estimator_copies = (None, later) if adopt else (snaps, None)
        self.model_ = weighted_graph(snaps, [1.0] * len(snaps), self.task_, name=name, copy=not adopt)

    @property
    def estimators_(self):
        """The snapshots, standalone and trainable (made on first access; see `_set_members`)."""
        made = vars(self).get("_estimators")
        if made is None:
            later = vars(self).get("_estimator_copies")
            if later is None:
                raise AttributeError(f"{self._who()} has no estimators_ before it is fitted")
            made = self._estimators = [c.make() for c in later]
        return made


class SnapshotEnsemble(_Snapshots):
    """Snapshot ensemble: one run of `epochs` with M = `n_estimators` cosine cycles.

    The optimizer is the one the builder compiled (its class and settings), its learning
    rate REPLACED by the cosine schedule with restarts, peaking at `max_learning_rate`
    (default: the compiled rate); an `OptimizerReplacedWarning` names the compiled
    optimizer. A builder that compiles nothing gets SGD, peak 0.1 (Huang et al.).

    Args:
        estimator (Callable | keras.Model): one builder callable or `keras.Model` (its loss and
            optimizer are kept; the learning rate follows the cosine schedule).
        n_estimators (int): cycles = snapshots; must divide `epochs`.
        epochs (int): epochs of the whole run (all cycles): one run of one network, as
            everywhere in `kfuse.ensemble`.
        batch_size (int): rows per step.
        max_learning_rate (float | None): the cosine schedule's peak, lr0 (None: the compiled
            optimizer's learning rate; 0.1 without one).
        optimizer: deprecated; compile the builder's network with it.
        fit_params (dict | None): other keywords of Keras `Model.fit`, as for `BaggingClassifier`.
        random_state (int | None): as for `BaggingClassifier`.
        verbose (int): as for `BaggingClassifier`.
        work_dir (str | os.PathLike | None): as for `BaggingClassifier`. With `work_dir`, the
            network's and optimizer's variables are saved after every cycle (`RunState`); a second
            `fit` continues after the last finished cycle and ends with the snapshots of a run never
            interrupted (each cycle shuffles from its own seed; on the in-memory epoch loop, the
            default for numpy data).
        learning_rate: deprecated spelling of `max_learning_rate`.

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

    renamed = {"learning_rate": "max_learning_rate"}
    rates = ("max_learning_rate", "learning_rate")
    default_optimizer = ("sgd", 0.1)

    def __init__(self, estimator, n_estimators=5, epochs=10, batch_size=32, max_learning_rate=None,
                 optimizer=None, fit_params=None, random_state=None, verbose=0, work_dir=None, learning_rate=None):
        super().__init__(estimator, epochs, batch_size, fit_params, random_state, verbose, work_dir)
        self.n_estimators = n_estimators
        self.max_learning_rate = max_learning_rate
        self.learning_rate = learning_rate
        self.optimizer = optimizer

    def _fit(self, x, y, claims):
        who = self._who()
        m = base.check_positive_int(self.n_estimators, "n_estimators", who)
        epochs = base.check_positive_int(self.epochs, "epochs", who)
        if epochs % m:
            close = [d for d in range(1, epochs + 1) if epochs % d == 0]
            raise ValueError(f"{who}: {m} cycles do not divide epochs={epochs}; give n_estimators in {close} "
                             f"or epochs a multiple of {m} (e.g. {m * max(1, round(epochs / m))})")
        model, target, compiled = self._setup(y)
        settings = self._fit_settings(own=("batch_size",))
        steps = steps_per_epoch(len(y), settings.batch_size)
        peak = self._rate("max_learning_rate", compiled, self.default_optimizer[1])
        optimizer = self._optimizer(compiled)
        seeds = _cycle_seeds(m)
        per_cycle = epochs // m
        cycle_steps = per_cycle * steps
        schedule = keras.optimizers.schedules.CosineDecayRestarts(
            peak, first_decay_steps=cycle_steps, t_mul=1.0, m_mul=1.0, alpha=0.0)
        # the schedule over every step at once: one step at a time, eagerly, cost about 1 ms
        # each (4.7 s of a 4,000-step run, a third of its fit time)
        every_step = keras.ops.arange(epochs * steps)
        self.learning_rates_ = np.asarray(keras.ops.convert_to_numpy(schedule(every_step)), "float64")
        self._replaced(compiled, f"replaces the learning rate by a cosine schedule with {m} restarts peaking at {peak:g}")
        model.compile(optimizer=make_optimizer(optimizer, schedule, who), loss=model.loss, jit_compile=False)
        worker = self._network(model)
        network = model if worker is None else worker.model
        store = self._open_store(claims, x, y)
        run = RunState(store)
        done = _finished_cycles(run, network, who)
        cycles = [dict(settings.member(0), epochs=per_cycle, seed=seeds[c]) for c in range(m)]
        self._snapshots(network, x, target, cycles, done, run, "snapshot_ensemble")
        self._keep(worker)
        return self


class FastGeometricEnsemble(_Snapshots):
    """Fast geometric ensembling: `warmup_epochs`, then triangular cycles, M snapshots.

    The cycle lasts `cycle` epochs (even); lr goes lr_1 -> lr_2 -> lr_1 per step; a
    snapshot is taken at each minimum (mid-cycle), so the run is warmup_epochs +
    cycle/2 + (M - 1) * cycle epochs. torchensemble's defaults: lr_1 5e-2, lr_2 1e-4, cycle 4.

    The warm-up trains with the optimizer the builder compiled (at `warmup_learning_rate`
    when given); the cyclic phase REPLACES its learning rate by the triangular cycles, on a
    fresh optimizer of the same class and settings (Garipov et al.'s rule), and an
    `OptimizerReplacedWarning` names the compiled optimizer. A builder that compiles
    nothing gets Adam at 1e-3.

    Args:
        estimator (Callable | keras.Model): one builder or `keras.Model`.
        n_estimators (int): snapshots.
        warmup_epochs (int): epochs of ordinary training before the cycles.
        cycle (int): epochs per cycle of the cyclic phase (even; same optimizer class).
        lr_1 (float): the cyclic phase's highest learning rate.
        lr_2 (float): the cyclic phase's lowest learning rate (reached mid-cycle).
        batch_size (int): as for `SnapshotEnsemble`.
        warmup_learning_rate (float | None): the warm-up's learning rate (None: the compiled
            optimizer's).
        optimizer: deprecated; compile the builder's network with it.
        fit_params (dict | None): as for `SnapshotEnsemble`.
        random_state (int | None): as for `SnapshotEnsemble`.
        verbose (int): as for `SnapshotEnsemble`.
        work_dir (str | os.PathLike | None): as for `SnapshotEnsemble`.
        epochs: deprecated spelling of `warmup_epochs`.
        learning_rate: deprecated spelling of `warmup_learning_rate`.

    Fitted attributes: `model_`, `estimators_`, `classes_`.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.ensemble import FastGeometricEnsemble

    x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)
    build = lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    fge = FastGeometricEnsemble(build, n_estimators=2, warmup_epochs=1, cycle=2, batch_size=20).fit(x, y)
    ```
    """

    renamed = {"epochs": "warmup_epochs", "learning_rate": "warmup_learning_rate"}
    rates = ("warmup_learning_rate", "learning_rate", "lr_1", "lr_2")

    def __init__(self, estimator, n_estimators=5, warmup_epochs=10, cycle=4, lr_1=5e-2, lr_2=1e-4,
                 batch_size=32, warmup_learning_rate=None, optimizer=None, fit_params=None,
                 random_state=None, verbose=0, work_dir=None, epochs=None, learning_rate=None):
        super().__init__(estimator, epochs, batch_size, fit_params, random_state, verbose, work_dir)
        self.n_estimators = n_estimators
        self.warmup_epochs = warmup_epochs
        self.cycle = cycle
        self.lr_1 = lr_1
        self.lr_2 = lr_2
        self.warmup_learning_rate = warmup_learning_rate
        self.learning_rate = learning_rate
        self.optimizer = optimizer

    def _compile_phases(self, model, steps, compiled, who):
        """Compile `model` for the warm-up; returns the call `(worker, network)` that starts
        the cyclic phase of the network the run trains, on an optimizer as fresh as a new one
        (torchensemble's and Garipov et al.'s rule)."""
        cycle = TriangularCycle(self.lr_1, self.lr_2, self.cycle * steps)
        warm, optimizer = self._warmup(compiled, f"replaces the learning rate by triangular cycles between "
                                                 f"lr_1={self.lr_1:g} and lr_2={self.lr_2:g} for the cyclic phase")

        def compile_with(rate):
            model.compile(optimizer=make_optimizer(optimizer, rate, who), loss=model.loss, jit_compile=False)

        if keras.backend.backend() != "tensorflow":
            # no epoch trace to share there (Model.fit). The one-optimizer path below trains
            # otherwise than a second compile on JAX (tests/ensemble/test_fge_phases.py run with
            # KERAS_BACKEND=jax; cause not found), so those backends compile twice, as before
            compile_with(warm)
            return lambda worker, network: compile_with(cycle)
        schedule = WarmUpThenCycle(warm, cycle)
        compile_with(schedule)
        object.__setattr__(model, PHASE_ATTRIBUTE, schedule)
        return _start_cycles

    def _fit(self, x, y, claims):
        who = self._who()
        m = base.check_positive_int(self.n_estimators, "n_estimators", who)
        cycle = base.check_positive_int(self.cycle, "cycle", who)
        if cycle % 2:
            raise ValueError(f"{who}: `cycle`={cycle} epochs must be even (a snapshot at mid-cycle); try {cycle + 1}")
        model, target, compiled = self._setup(y)
        warmup = self._warmup_epochs()
        seeds = _cycle_seeds(m + 1)  # the warm-up's, then each cycle's
        settings, bar = self._fit_settings(own=("batch_size",)), self._progress(m)
        store = self._open_store(claims, x, y)
        run = RunState(store)
        state = run.load()
        start_cycles = self._compile_phases(model, steps_per_epoch(len(y), settings.batch_size), compiled, who)
        worker = self._network(model)
        network = model if worker is None else worker.model
        settings = settings.member(0)
        if warmup and state is None:
            fit_member(network, x, target, dict(settings, epochs=int(warmup), seed=seeds[0]))
            run.save(network, "warm-up", 0)
        start_cycles(worker, network)  # a fresh optimizer, in a resumed run as in the first
        if state is not None and state["phase"] == "warm-up":
            run.restore(network, state, who, optimizer=False)
        done = _finished_cycles(run, network, who, state)
        cycles = [dict(settings, epochs=cycle // 2 if c == 0 else cycle, seed=seeds[c + 1]) for c in range(m)]
        self._snapshots(network, x, target, cycles, done, run, "fast_geometric", bar)
        if worker is not None:
            _phase(network).cyclic.assign(0.0)  # back to the warm-up: as the next run compiles it
            self._keep(worker)
        return self
