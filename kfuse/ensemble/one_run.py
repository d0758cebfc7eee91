"""What the one-run ensembles share (snapshot, FGE, SWA): the one network, its optimizer."""

import math

import keras
import numpy as np

from kfuse.ensemble import base


def make_optimizer(name, learning_rate, who):
    """A Keras optimizer by name with `learning_rate` (a number or a schedule)."""
    try:
        return keras.optimizers.get({"class_name": name, "config": {"learning_rate": learning_rate}})
    except (ValueError, TypeError) as error:
        raise ValueError(f"{who}: unknown optimizer {name!r} ({error}); use e.g. 'adam' or 'sgd'") from error


class OneRun(base.BaseEnsemble):
    """Base of the ensembles trained in ONE run of one network (`_setup`, fit settings, steps)."""

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
