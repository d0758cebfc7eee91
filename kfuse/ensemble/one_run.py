"""What the one-run ensembles share (snapshot, FGE, SWA): the one network, its optimizer."""

import math

import keras

from kfuse.ensemble import base
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


class OneRun(base.BaseEnsemble):
    """Base of the ensembles trained in ONE run of one network (`_setup`, fit settings, steps)."""

    #: the learning-rate arguments of each one-run ensemble, checked > 0 at the start of fit
    rates = ("learning_rate",)

    def _setup(self, x, y):
        """(the compiled network, its targets): labels decide the task (`base.encode_labels`:
        strings, integers and whole-number floats that fit the outputs are classes)."""
        who = self._who()
        y = base.check_xy(x, y, who)
        for name in self.rates:
            base.check_positive_number(getattr(self, name), name, who)
        if isinstance(self.estimator, (list, tuple)):
            raise TypeError(f"{who} trains ONE network; give one builder or keras.Model, not a list")
        spec = base.spec_list(self.estimator, who)[0]
        model = base.build_member(spec, self._seed(0), who, 0)
        width = base.output_width(model)
        self.task_ = "classification" if base.is_classification_labels(y, width) else "regression"
        if self.task_ == "classification":
            self.classes_, target = base.encode_labels(y, who, width)
        else:
            target = y.astype("float32")
        return base.compile_member(model, self.task_), target

    def _fit_settings(self):
        settings = base.member_fit_settings(self.fit_params, 0, self._who())
        for key in ("epochs", "initial_epoch"):
            if key in settings:
                raise ValueError(f"{self._who()}: set `{key}` through the ensemble's own arguments, not fit_params")
        settings.setdefault("batch_size", self.batch_size)
        return settings

    def _steps(self, x):
        return math.ceil(base.n_rows(x) / self.batch_size)
