"""AdaBoost SAMME (Zhu et al. 2009) over Keras networks, ending as ONE graph.

Regression (AdaBoost.R2, a weighted median of the members) is `AdaBoostRegressor` in
`kfuse.ensemble.boosting_r2`; `AdaBoostClassifier` refuses continuous targets and points
to it.
"""

import numpy as np

from kfuse.ensemble import base
from kfuse.ensemble.assemble import vote_graph
from kfuse.ensemble.conventions import Ensemble
from kfuse.ensemble.trainer_pool import Trainers
from kfuse.inputs.selection import take
from kfuse.trainers.members import copy_network, fit_member


def samme_step(sample_weight, wrong, n_classes, learning_rate=1.0):
    """(error, alpha, new sample weights) of one SAMME round, as scikit-learn computes it.

    error = sum(w * wrong) / sum(w); alpha = learning_rate * (log((1 - error) / error)
    + log(K - 1)); misclassified weights are multiplied by exp(alpha), then all are
    normalised to sum to one.
    """
    w = np.asarray(sample_weight, dtype="float64")
    wrong = np.asarray(wrong, dtype=bool)
    error = float(np.sum(w * wrong) / np.sum(w))
    if error <= 0:
        return 0.0, 1.0, w / w.sum()
    alpha = learning_rate * (np.log((1 - error) / error) + np.log(n_classes - 1))
    new = w * np.exp(alpha * wrong * (w > 0))
    return error, float(alpha), new / new.sum()


def fit_round(model, x, target, w, draw, settings):
    """Train the member of one boosting round: on the rows `draw` (a resample drawn with the
    boosting weights) when given, else on every row with Keras `sample_weight` = the
    boosting weights `w` scaled to mean one.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.ensemble.boosting import fit_round

    x = np.random.default_rng(0).normal(size=(20, 3)).astype("float32"); y = (x[:, 0] > 0).astype(int)
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    net.compile("adam", "sparse_categorical_crossentropy")
    w = np.full(20, 1 / 20)
    fit_round(net, x, y, w, None, {"epochs": 1, "batch_size": 10})  # sample_weight: w * 20, all ones
    ```
    """
    if draw is not None:
        fit_member(model, take(x, draw), target[draw], settings)
    else:
        fit_member(model, x, target, settings, sample_weight=(w * len(w)).astype("float32"))


class AdaBoostBase(Ensemble):
    """The rounds AdaBoost SAMME and AdaBoost.R2 share (as scikit-learn's
    `BaseWeightBoosting`): round i trains member i on the boosting weights (`_round`) or
    takes it from the run store, then `_verdict` says whether it is kept and whether
    boosting stops; the graph (`_graph`) combines the kept members by their weights."""

    #: the key of a member's weight in the run store
    weight_key = "alpha"

    def _fit(self, x, y, claims):
        """Boost from uniform weights until `n_estimators` rounds or a stop; returns self."""
        who = self._who()
        n_estimators = base.check_positive_int(self.n_estimators, "n_estimators", who)
        base.check_positive_number(self.learning_rate, "learning_rate", who)
        target, specs = self._checked_target(y, who)
        n = len(target)
        w = np.full(n, 1.0 / n)
        settings = self._fit_settings()
        resample = self._resampler(n)
        store = self._open_store(claims, x, y)
        bar = self._progress(n_estimators)
        members, weights, errors = [], [], []
        trainers = Trainers(specs, self.task, who)
        for i in range(n_estimators):
            draw = resample(w) if self.resample else None
            model, error, weight, new_w = self._stored_round(store, i, trainers, x, target, w, draw,
                                                             settings.member(i), i == n_estimators - 1)
            bar.update(i + 1)
            keep, stop = self._verdict(error, new_w, first=not members)
            if keep:
                members.append(model)
                weights.append(weight)
                errors.append(error)
            if stop:
                break
            w = new_w
        self.estimators_ = members
        self.estimator_weights_ = np.asarray(weights)
        self.estimator_errors_ = np.asarray(errors)
        self.model_ = self._graph(members, self.estimator_weights_)
        return self

    def _stored_round(self, store, i, *args):
        """(member, error, its weight, new sample weights) of round `i`: as an earlier fit
        kept them in the run store, else trained by `_round(i, *args)` and then kept there."""
        if store.has(base.member(i)):
            model, state = base.load_member(store, i)
            return model, float(state["error"]), float(state[self.weight_key]), state["weights"]
        model, error, weight, new_w = self._round(i, *args)
        store.save(base.member(i), model, error=error, **{self.weight_key: weight}, weights=new_w)
        return model, error, weight, new_w


class AdaBoostClassifier(AdaBoostBase):
    """AdaBoost SAMME, as scikit-learn's `AdaBoostClassifier(algorithm="SAMME")`.

    Member m is trained with Keras `sample_weight` = the boosting weights (scaled to mean
    one), or on rows resampled with those probabilities (`resample=True`, for bases that
    ignore weights). Its weighted error err_m gives alpha_m = learning_rate *
    (log((1 - err_m) / err_m) + log(K - 1)); misclassified rows get weight * exp(alpha_m).
    Boosting stops early when a member is perfect (it is kept, alpha 1) or no better than
    chance (err_m >= 1 - 1/K: it is dropped; on the first member this is an error). The
    graph is a hard vote weighted by alpha (`WeightedVote`): argmax_k sum_m alpha_m
    [h_m(x) = k].

    Args:
        estimator (Callable | keras.Model | list): the base network, as for
            `BaggingClassifier` (a builder, a model to clone, or a list of either).
        n_estimators (int): the most members boosted; fewer when boosting stops early.
        fit_params (dict | list[dict] | None): other keywords of Keras `Model.fit`, as for
            `BaggingClassifier`.
        random_state (int | None): seed of the resamples and of the members' initialisation.
        verbose (int): 1 shows a progress bar over members; 0 is silent.
        work_dir (str | os.PathLike | None): folder where finished members are kept, as for
            `BaggingClassifier`.
        learning_rate (float): shrinks each alpha (> 0).
        resample (bool): train on weighted resamples instead of passing `sample_weight`.
        epochs (int): epochs each member trains.
        batch_size (int): rows per training step.

    Each member trains with the optimizer its builder compiled (Adam when it compiled none).

    Fitted attributes: `model_`, `estimators_`, `estimator_weights_` (alpha per kept
    member), `estimator_errors_` (err per kept member), `classes_`, `n_classes_`.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.ensemble import AdaBoostClassifier

    x = np.random.default_rng(0).normal(size=(80, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)

    def build():
        net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        net.compile(keras.optimizers.Adam(0.1), "sparse_categorical_crossentropy")
        return net

    boost = AdaBoostClassifier(build, n_estimators=2, epochs=5, random_state=0).fit(x, y)
    boost.estimator_weights_
    ```
    """

    task = "classification"

    def __init__(self, estimator, n_estimators=10, learning_rate=1.0, resample=False, fit_params=None,
                 random_state=None, verbose=0, work_dir=None, epochs=1, batch_size=32):
        super().__init__(estimator, epochs, batch_size, fit_params, random_state, verbose, work_dir)
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.resample = resample

    def _checked_target(self, y, who):
        """(class ids, member specs): y must hold at least two classes."""
        if not base.is_classification_labels(y, width=np.inf):
            raise ValueError(
                f"{who} needs integer class labels (or strings, or whole-number floats); received y of dtype {y.dtype} and shape {y.shape}. "
                "For regression targets use AdaBoostRegressor (AdaBoost.R2, same arguments plus `loss`)."
            )
        specs = base.spec_list(self.estimator, who)
        self.classes_, target = base.encode_labels(y, who)
        self.n_classes_ = k = len(self.classes_)
        if k < 2:
            raise ValueError(f"{who} needs at least 2 classes in y; received {self.classes_.tolist()}")
        return target, specs

    def _resampler(self, n):
        """Draws n rows with the boosting weights as probabilities."""
        rng = np.random.default_rng(self.random_state)
        return lambda w: rng.choice(n, size=n, replace=True, p=w)

    def _verdict(self, error, new_w, first):
        """(keep, stop): a member at or above chance is dropped and stops boosting (an error
        on the first); a perfect one is kept and stops it."""
        k = self.n_classes_
        if error >= 1.0 - 1.0 / k:
            if first:
                raise ValueError(
                    f"{self._who()}: member_0 has weighted error {error:.3f}, at or above chance "
                    f"(1 - 1/K = {1 - 1 / k:.3f}), so SAMME cannot weight it. Train the member "
                    "longer (epochs=...) or use a stronger network."
                )
            return False, True
        return True, error <= 0

    def _graph(self, members, weights):
        """The members' hard vote weighted by alpha, as one graph."""
        return vote_graph(members, weights, name="adaboost")

    def _round(self, i, trainers, x, target, w, draw, settings, last):
        """(member, error, alpha, new sample weights) of SAMME round `i`, trained here."""
        who, k = self._who(), self.n_classes_
        trainer = trainers.fresh(i, self._seed(i))
        fit_round(trainer, x, target, w, draw, settings)
        wrong = np.argmax(base.probabilities(trainer, x), axis=-1) != target
        model = copy_network(trainer)
        if model.outputs[0].shape[-1] != k:
            raise ValueError(
                f"{who}: member_{i} outputs {model.outputs[0].shape[-1]} values per row but y has "
                f"{k} classes; end each member in Dense({k}) (a classifier, not a regression head)"
            )
        return (model, *samme_step(w, wrong, k, self.learning_rate))
