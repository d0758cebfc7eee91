"""What the one-run ensembles share (snapshot, FGE, SWA): the one network, its optimizer."""

import math

import keras
import numpy as np

from kfuse.ensemble import base
from kfuse.ensemble.conventions import Ensemble, OptimizerReplacedWarning, user_warning
from kfuse.trainers import kept
from kfuse.trainers.worker import Worker
from kfuse.utils.optimizers import copy_optimizer


def make_optimizer(optimizer, learning_rate, who):
    """A fresh Keras optimizer with `learning_rate` (a number or a schedule).

    `optimizer`: a name ("adam"), a Keras config dict (`{"class_name": "adam", "config":
    {"epsilon": 1e-8}}`), or a `keras.optimizers.Optimizer`, whose class and settings are
    copied (the instance itself is never trained, so one can be given to several fits).
    Its own learning rate is replaced by `learning_rate`.
    """
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return copy_optimizer(optimizer, learning_rate=learning_rate)
    if isinstance(optimizer, dict):
        if set(optimizer) - {"class_name", "config", "module", "registered_name"} or "class_name" not in optimizer:
            raise ValueError(f"{who}: optimizer dict {optimizer!r} is not a Keras optimizer config; give "
                             "{'class_name': 'adam', 'config': {...}}, a name such as 'adam', or an optimizer")
        # module / registered_name kept: they are how Keras finds a registered custom class
        spec = dict(optimizer, config=dict(optimizer.get("config") or {}, learning_rate=learning_rate))
    elif isinstance(optimizer, str):
        spec = {"class_name": optimizer, "config": {"learning_rate": learning_rate}}
    else:
        raise TypeError(f"{who}: optimizer must be a name such as 'adam', a Keras optimizer config dict or a "
                        f"keras.optimizers.Optimizer; got {type(optimizer).__name__} {optimizer!r}")
    try:
        return keras.optimizers.get(spec)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{who}: unknown optimizer {optimizer!r} ({error}); use e.g. 'adam' or 'sgd'") from error


def steps_per_epoch(rows, batch_size):
    """Training steps of one epoch over `rows` rows: `ceil(rows / batch_size)`.

    Example:

    ```python
    from kfuse.ensemble.one_run import steps_per_epoch

    steps_per_epoch(100, 32)  # 4: the last step takes the 4 rows left
    ```
    """
    return math.ceil(rows / batch_size)


def compiled_rate(optimizer):
    """The learning rate an optimizer was compiled with, or None for a schedule."""
    rate = optimizer.get_config().get("learning_rate")
    return float(rate) if isinstance(rate, (int, float)) else None


def describe(optimizer):
    """`Adam(learning_rate=0.001)`: an optimizer's class and rate, for messages."""
    rate = compiled_rate(optimizer)
    return f"{type(optimizer).__name__}(learning_rate={'a schedule' if rate is None else f'{rate:g}'})"


class OneRun(Ensemble):
    """Base of the ensembles trained in ONE run of one network (`_setup`, optimizer, steps).

    The run starts from the optimizer the builder compiled (its class and settings);
    the method replaces its learning rate where it must (its schedule), and says so once
    per fit with an `OptimizerReplacedWarning` naming the compiled optimizer. A builder
    that compiles nothing gets the class's `default_optimizer`.
    """

    #: the learning-rate arguments of each one-run ensemble, checked > 0 at the start of fit
    rates = ()
    #: the optimizer of a builder that compiled none, and its learning rate
    default_optimizer = ("adam", 1e-3)

    def _setup(self, y):
        """(the compiled network, its targets, the optimizer the builder compiled or None):
        labels decide the task (`base.encode_labels`: strings, integers and whole-number
        floats that fit the outputs are classes)."""
        who = self._who()
        for name in self.rates:
            if getattr(self, name) is not None:
                base.check_positive_number(getattr(self, name), name, who)
        if isinstance(self.estimator, (list, tuple)):
            raise TypeError(f"{who} trains ONE network; give one builder or keras.Model, not a list")
        spec = base.spec_list(self.estimator, who)[0]
        model = base.build_member(spec, self._seed(0), who, 0)
        compiled = model.optimizer if getattr(model, "optimizer", None) is not None and getattr(model, "loss", None) is not None else None
        width = base.output_width(model)
        self.task_ = "classification" if base.is_classification_labels(y, width) else "regression"
        if self.task_ == "classification":
            self.classes_, target = base.encode_labels(y, who, width)
        else:
            target = y.astype("float32")
        return base.compile_member(model, self.task_), target, compiled

    def _warmup_epochs(self):
        """`warmup_epochs` (or its deprecated spelling `epochs`): an integer >= 0."""
        value = self._setting("warmup_epochs")
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{self._who()}: `warmup_epochs` must be an integer >= 0; received {value!r}")
        return int(value)

    def _warmup(self, compiled, how):
        """(the warm-up's learning rate, the optimizer the run copies) of a run (FGE, SWA)
        whose later phase replaces the compiled rate as `how` says, in the one warning."""
        warm = self._rate("warmup_learning_rate", compiled, self.default_optimizer[1])
        optimizer = self._optimizer(compiled)
        self._replaced(compiled, f"{how} (warm-up at {warm:g})")
        return warm, optimizer

    def _optimizer(self, compiled):
        """The optimizer the run copies: the deprecated `optimizer` argument when given, the
        compiled one, or the class's default name."""
        if self.optimizer is not None:
            user_warning(f"{self._who()}: `optimizer` is deprecated and will be removed in the next release; "
                         "compile the builder's network with it (model.compile(optimizer=...)): the run "
                         "copies the compiled optimizer's class and settings", DeprecationWarning)
            return self.optimizer
        return compiled if compiled is not None else self.default_optimizer[0]

    def _rate(self, name, compiled, default):
        """Learning-rate argument `name` (or its deprecated spelling); else the compiled
        optimizer's rate (unless the deprecated `optimizer` replaces it); else `default`."""
        value = self._setting(name)
        if value is not None:
            return float(value)
        if compiled is None or self.optimizer is not None:
            return float(default)
        rate = compiled_rate(compiled)
        if rate is None:
            raise ValueError(f"{self._who()}: the builder compiled {describe(compiled)}; the method needs one "
                             f"number to start from: give `{name}`")
        return rate

    def _replaced(self, compiled, how):
        """Warn (once per fit) that the method replaces part of the compiled optimizer."""
        if compiled is not None and self.optimizer is None:
            user_warning(f"{self._who()} {how}; the optimizer the builder compiled, {describe(compiled)}, keeps "
                         "its class and other settings", OptimizerReplacedWarning)

    def _network(self, model):
        """The `Worker` the run trains in (TensorFlow; None elsewhere: the run trains
        `model`): one a finished run of this architecture and compiled optimizer gave back
        (`kfuse.trainers.kept`: no copy, no trace of its own), set to `model`'s fresh
        variables, or `model`'s own. Give it back with `_keep` when the run ends."""
        if keras.backend.backend() != "tensorflow":
            return None
        worker = kept.take("one_run", lambda one: one.fits(model))
        if worker is None:
            return Worker(model)
        worker.load(model)
        return worker

    def _keep(self, worker):
        """The run's worker kept for a later run (`kfuse.trainers.kept`)."""
        if worker is not None:
            kept.give_back("one_run", worker, worker.model)
