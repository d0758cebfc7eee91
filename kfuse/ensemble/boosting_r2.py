"""AdaBoost.R2 (Drucker 1997) over Keras networks, as scikit-learn's `AdaBoostRegressor`,
ending as ONE graph whose fusion is the members' weighted median (`WeightedMedian`)."""

import difflib
import warnings

import numpy as np

from kfuse.branches.outputs import final_activation, final_layer
from kfuse.ensemble import base
from kfuse.ensemble.assemble import median_graph
from kfuse.ensemble.boosting import AdaBoostBase, fit_round
from kfuse.trainers.members import copy_network

LOSSES = ("linear", "square", "exponential")


def r2_loss(prediction, y, loss="linear"):
    """Per-row loss in [0, 1]: |prediction - y| over its maximum, then squared ("square")
    or 1 - exp(-.) ("exponential"), as scikit-learn's `AdaBoostRegressor._boost`."""
    error = np.abs(np.asarray(prediction, "float64").ravel() - np.asarray(y, "float64").ravel())
    largest = error.max() if error.size else 0.0
    if largest != 0:
        error = error / largest
    if loss == "square":
        return error**2
    if loss == "exponential":
        return 1.0 - np.exp(-error)
    return error


def r2_step(sample_weight, prediction, y, loss="linear", learning_rate=1.0, last=False):
    """(error, estimator weight, new sample weights) of one AdaBoost.R2 round.

    As scikit-learn computes it: the loss (`r2_loss`, over the rows of positive weight);
    error = sum(w * loss); a perfect member (error <= 0) gets weight 1 and leaves the
    weights as they are; error >= 0.5 gets weight 0 (the caller stops boosting);
    otherwise beta = error / (1 - error), weight = learning_rate * log(1 / beta), and
    w <- w * beta ** ((1 - loss) * learning_rate), normalised to sum one (not on the
    `last` round, where scikit-learn skips the update).
    """
    w = np.asarray(sample_weight, dtype="float64").copy()
    mask = w > 0
    losses = r2_loss(np.asarray(prediction).ravel()[mask], np.asarray(y).ravel()[mask], loss)
    error = float(np.sum(w[mask] * losses))
    if error <= 0:
        return 0.0, 1.0, w
    if error >= 0.5:
        return error, 0.0, w
    beta = error / (1.0 - error)
    weight = float(learning_rate * np.log(1.0 / beta))
    if not last:
        w[mask] *= np.power(beta, (1.0 - losses) * learning_rate)
        total = w.sum()
        if np.isfinite(total) and total > 0:
            w /= total
    return error, weight, w


def check_loss(loss, who):
    if loss in LOSSES:
        return loss
    close = difflib.get_close_matches(str(loss), LOSSES, n=1, cutoff=0.0)
    raise ValueError(f"{who}: unknown `loss` {loss!r}; use one of {list(LOSSES)} (did you mean {close[0]!r}?)")


class AdaBoostRegressor(AdaBoostBase):
    """AdaBoost.R2, as scikit-learn's `AdaBoostRegressor`, over Keras networks.

    Round m draws a bootstrap of the rows with probabilities w (scikit-learn's own route,
    a `numpy.random.RandomState(random_state)`), or passes Keras `sample_weight` = w
    scaled to mean one (`resample=False`). Its per-row loss is |h_m(x) - y| over the
    largest one ("linear"), squared ("square") or 1 - exp(-.) ("exponential"); error_m =
    sum w * loss; beta_m = error_m / (1 - error_m); its weight is learning_rate *
    log(1 / beta_m), and w <- w * beta_m ** ((1 - loss) * learning_rate). Boosting stops
    at a perfect member (kept, weight 1) or at error_m >= 0.5 (dropped, unless it is the
    first: then it is kept alone with weight 0, with a warning, as scikit-learn keeps it).
    The graph outputs the weighted median of the members (`WeightedMedian`).

    One output column: y of shape (n,) or (n, 1), members ending in one unit; y of more
    columns is refused (scikit-learn's AdaBoostRegressor takes 1-D y too).

    Args:
        estimator (Callable | keras.Model | list): as for `BaggingRegressor`.
        n_estimators (int): as for `BaggingRegressor`.
        fit_params (dict | list[dict] | None): other keywords of Keras `Model.fit`, as for
            `BaggingRegressor`.
        random_state (int | None): as for `BaggingRegressor`.
        verbose (int): as for `BaggingRegressor`.
        work_dir (str | os.PathLike | None): as for `BaggingRegressor`.
        learning_rate (float): shrinks each weight and update (> 0).
        loss (str): "linear", "square" or "exponential".
        resample (bool): train on weighted bootstraps (default, as scikit-learn) instead of
            passing `sample_weight`.
        epochs (int): epochs each member trains.
        batch_size (int): rows per training step.

    Each member trains with the optimizer its builder compiled (Adam when it compiled none).

    Fitted attributes: `model_`, `estimators_`, `estimator_weights_`,
    `estimator_errors_` (one per kept member).

    Example:

    ```python
    import keras, numpy as np
    from kfuse.ensemble import AdaBoostRegressor

    x = np.random.default_rng(0).normal(size=(80, 3)).astype("float32"); y = x[:, 0] ** 2

    def build():
        net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
        net.compile(keras.optimizers.Adam(0.05), "mse")
        return net

    boost = AdaBoostRegressor(build, n_estimators=2, epochs=5, random_state=0).fit(x, y)
    boost.predict(x[:2]).shape  # (2, 1)
    ```
    """

    task = "regression"

    def __init__(self, estimator, n_estimators=10, learning_rate=1.0, loss="linear", resample=True,
                 fit_params=None, random_state=None, verbose=0, work_dir=None, epochs=1, batch_size=32):
        super().__init__(estimator, epochs, batch_size, fit_params, random_state, verbose, work_dir)
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.loss = loss
        self.resample = resample

    weight_key = "weight"

    def _checked_target(self, y, who):
        """(float32 targets of one column, member specs); `loss` checked first."""
        check_loss(self.loss, who)
        if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
            raise ValueError(
                f"{who} takes one target column, y of shape (n,) or (n, 1); received shape {y.shape}. "
                "Boost each column on its own (one AdaBoostRegressor per column)."
            )
        if not np.issubdtype(y.dtype, np.number):
            raise ValueError(f"{who} needs numeric targets; received y of dtype {y.dtype}")
        target = y.reshape(-1).astype("float32")
        return target, base.spec_list(self.estimator, who)

    def _resampler(self, n):
        """Draws n rows with the boosting weights as probabilities, on scikit-learn's route
        (a `numpy.random.RandomState(random_state)`)."""
        rng = np.random.RandomState(self.random_state)
        return lambda w: rng.choice(np.arange(n), size=n, replace=True, p=w)

    def _verdict(self, error, new_w, first):
        """(keep, stop): a member of loss >= 0.5 stops boosting, dropped (kept alone, with
        weight 0 and a warning, when it is the first); a perfect one, or weights that no
        longer sum to a positive number, stop it after keeping the member."""
        if error >= 0.5:
            if first:
                warnings.warn(
                    f"{self._who()}: member_0 has weighted loss {error:.3f} >= 0.5, so AdaBoost.R2 stops at "
                    "it; the ensemble is member_0 alone (weight 0, as scikit-learn keeps it). "
                    "Train the member longer (epochs=...) or try loss='linear'.",
                    stacklevel=3,
                )
            return first, True
        total = float(np.sum(new_w))
        return True, error <= 0 or not np.isfinite(total) or total <= 0

    def _graph(self, members, weights):
        """The members' weighted median, as one graph."""
        return median_graph(members, weights, name="adaboost_r2")

    def predict_proba(self, x, batch_size=256):
        raise AttributeError(f"{self._who()} is a regressor and has no predict_proba; use predict")

    def predict(self, x, batch_size=256):
        """The weighted median of the members, `(n, 1)`, from the fused graph."""
        self._check_fitted()
        return np.asarray(self.model_.predict(self._tokenized(x), batch_size=batch_size, verbose=0))

    def _round(self, i, trainers, x, target, w, draw, settings, last):
        """(member, error, weight, new sample weights) of AdaBoost.R2 round `i`, trained here."""
        who = self._who()
        model = trainers.fresh(i, self._seed(i))
        units = model.outputs[0].shape[-1]
        layer = final_layer(model)
        act = final_activation(layer)[0] if layer is not None else None
        if units != 1 or act == "softmax":
            raise ValueError(
                f"{who}: member_{i} ends in {units} unit(s) with activation {act!r}, a classification "
                "head; AdaBoost.R2 needs one regression output per row: end each member in "
                "Dense(1) (linear). For class labels use AdaBoostClassifier."
            )
        fit_round(model, x, target, w, draw, settings)
        prediction = model.predict(x, batch_size=256, verbose=0)
        return (copy_network(model), *r2_step(w, prediction, target, self.loss, self.learning_rate, last=last))
