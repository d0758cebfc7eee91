"""Fixed weights for any set of trained members, chosen on held-out data, in ONE graph.

Methods: "uniform"; "metric" (w_i proportional to exp((s_i - max_j s_j) / temperature),
s = a held-out score, higher better; log loss and MSE enter as their negatives);
"optimize" (minimise held-out log loss, or MSE for regression, of the weighted average
over the simplex w >= 0, sum w = 1, with `scipy.optimize.minimize(method="SLSQP")`);
"caruana" (Caruana et al. 2004, AutoGluon's rules: forward selection with replacement for
`ensemble_size` steps, each adding the member whose inclusion gives the lowest held-out
loss, ties going to members already in the ensemble (then the lowest index), weights =
counts / steps at the best step).
"""

import numpy as np

from kfuse.ensemble import base
from kfuse.ensemble.assemble import weighted_graph
from kfuse.ensemble.conventions import Ensemble
from kfuse.inputs.xy import checked_xy

METHODS = ("uniform", "metric", "optimize", "caruana")
EPS = 1e-15


def log_loss(y, proba):
    p = np.clip(proba[np.arange(len(y)), y], EPS, 1.0)
    return float(-np.mean(np.log(p)))


def loss_of(kind, y, pred):
    if kind == "log_loss":
        return log_loss(y, pred)
    if kind == "accuracy":
        return 1.0 - float(np.mean(np.argmax(pred, -1) == y))
    return float(np.mean((pred.reshape(len(y), -1) - y.reshape(len(y), -1)) ** 2))


def _scores(predictions, y, task, metric):
    """Held-out score per member, higher is better."""
    if task == "regression":
        if metric not in (None, "mse"):
            raise ValueError(f"metric={metric!r} for regression: use 'mse'")
        return np.array([-loss_of("mse", y, p) for p in predictions])
    metric = metric or "accuracy"
    if metric == "accuracy":
        return np.array([np.mean(np.argmax(p, -1) == y) for p in predictions])
    if metric == "log_loss":
        return np.array([-log_loss(y, p) for p in predictions])
    from sklearn.metrics import f1_score, get_scorer

    if metric == "f1":
        return np.array([f1_score(y, np.argmax(p, -1), average="macro") for p in predictions])
    try:
        scorer = get_scorer(metric)
    except ValueError as error:
        raise ValueError(f"Unknown metric {metric!r}: use 'accuracy', 'f1', 'log_loss' or a scikit-learn scorer name") from error
    return np.array([scorer(_Fixed(p), None, y) for p in predictions])


class _Fixed:
    """A fitted-estimator stand-in holding precomputed probabilities, for scorers."""

    _estimator_type = "classifier"

    def __init__(self, proba):
        self.proba = proba
        self.classes_ = np.arange(proba.shape[-1])

    def fit(self, *args):
        return self

    def predict(self, x):
        return np.argmax(self.proba, -1)

    def predict_proba(self, x):
        return self.proba

    def decision_function(self, x):
        return self.proba


def caruana(predictions, y, ensemble_size=25, loss="log_loss"):
    """(weights, losses per step): forward selection with replacement, best step kept."""
    m = len(predictions)
    counts = np.zeros(m)
    total = np.zeros_like(predictions[0], dtype="float64")
    losses, history = [], []
    for step in range(1, ensemble_size + 1):
        cand = np.array([loss_of(loss, y, (total + p) / step) for p in predictions])
        tied = np.flatnonzero(cand <= cand.min() + 1e-12)
        inside = [j for j in tied if counts[j] > 0]
        pick = inside[0] if inside else tied[0]
        counts[pick] += 1
        total = total + predictions[pick]
        losses.append(float(cand[pick]))
        history.append(counts.copy())
    best = int(np.argmin(losses))
    return history[best] / (best + 1), np.asarray(losses)


def optimize(predictions, y, task):
    """Simplex weights minimising held-out log loss (classification) or MSE."""
    from scipy.optimize import minimize

    stack = np.stack(predictions).astype("float64")
    m = len(predictions)
    kind = "log_loss" if task == "classification" else "mse"

    def objective(w):
        return loss_of(kind, y, np.tensordot(np.clip(w, 0, None), stack, axes=1))

    result = minimize(objective, np.full(m, 1.0 / m), method="SLSQP", bounds=[(0.0, 1.0)] * m,
                      constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0}],
                      options={"maxiter": 200, "ftol": 1e-10})
    w = np.clip(result.x, 0, None)
    return w / w.sum()


def check_method(method, who=None):
    """Refuse an unknown weighting method, suggesting the closest valid name."""
    if method in METHODS:
        return method
    import difflib

    close = difflib.get_close_matches(str(method), METHODS, n=1)
    raise ValueError(f"{who + ': ' if who else ''}Unknown weighting method {method!r}; valid: {METHODS}"
                     + (f". Did you mean {close[0]!r}?" if close else ""))


def ensemble_weights(predictions, y, method="caruana", task="classification", metric=None,
                     temperature=0.01, ensemble_size=25):
    """Member weights (summing to one) from held-out predictions, a list of (n, K) arrays.

    Example:

    ```python
    import numpy as np
    from kfuse.ensemble import ensemble_weights

    y = np.array([0, 1, 1])
    good = np.array([[.9, .1], [.2, .8], [.3, .7]]); bad = np.array([[.5, .5]] * 3)
    ensemble_weights([good, bad], y, method="caruana")  # array([1., 0.])
    ```
    """
    check_method(method)
    predictions = [np.asarray(p, dtype="float64") for p in predictions]
    shapes = {i: p.shape for i, p in enumerate(predictions)}
    if len(set(shapes.values())) != 1:
        listing = ", ".join(f"member_{i}: {s}" for i, s in shapes.items())
        raise ValueError(f"Members have different output shapes or class counts ({listing}); "
                         "weights need members that predict the same classes")
    y = np.asarray(y)
    if method == "uniform":
        return np.full(len(predictions), 1.0 / len(predictions))
    if method == "metric":
        s = _scores(predictions, y, task, metric)
        w = np.exp((s - s.max()) / float(temperature))
        return w / w.sum()
    if method == "optimize":
        return optimize(predictions, y, task)
    loss = metric or ("log_loss" if task == "classification" else "mse")
    return caruana(predictions, y, ensemble_size=base.check_positive_int(ensemble_size, "ensemble_size", "caruana"), loss=loss)[0]


class WeightedEnsemble(Ensemble):
    """Fixed weights over trained members, chosen on held-out data; ONE graph.

    Args:
        members (list[keras.Model] | BaseEnsemble): a list of trained `keras.Model`s (heterogeneous
            allowed), or a fitted kfuse ensemble (its `estimators_`).
        method (str): "uniform", "metric", "optimize" or "caruana" (see the module docstring).
        metric (str | Callable | None): for "metric": "accuracy" (default), "f1", "log_loss" or a
            scikit-learn scorer name; for "caruana": "log_loss" (default), "accuracy" or "mse".
        temperature (float): the "metric" transform's temperature.
        ensemble_size (int): Caruana's number of steps (25, AutoGluon's default).

    `fit(x_val, y_val)` takes HELD-OUT data (never the members' training rows).
    Fitted attributes: `model_` (a `WeightedAverage` with fixed weights, readable with
    `model_.fusion_layer.branch_weights()`), `weights_`, `member_scores_`, `classes_`.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.ensemble import WeightedEnsemble

    x = np.random.default_rng(0).normal(size=(30, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)
    nets = [keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")]) for _ in range(2)]
    ens = WeightedEnsemble(nets, method="optimize").fit(x, y)
    ens.weights_.sum()  # 1.0
    ```
    """

    def __init__(self, members, method="caruana", metric=None, temperature=0.01, ensemble_size=25, task="auto"):
        self.members = members
        self.method = method
        self.metric = metric
        self.temperature = temperature
        self.ensemble_size = ensemble_size
        self.task = task

    def fit(self, x=None, y=None):
        """Choose the weights on held-out (x, y) and build `model_`; returns self."""
        who = self._who()
        members = getattr(self.members, "estimators_", self.members)
        if not isinstance(members, (list, tuple)) or not members:
            raise ValueError(f"{who}: `members` must be a non-empty list of trained keras.Models or a fitted ensemble")
        check_method(self.method, who)
        self.raw_source_ = members[0]  # its KerasHub Task branches tokenize raw strings
        x = self._tokenized(x)
        if x is None or y is None:
            if self.method in ("optimize", "caruana", "metric"):
                raise ValueError(f"{who}: method={self.method!r} chooses weights on HELD-OUT data; "
                                 "call fit(x_val, y_val) with rows the members were not trained on")
            self.weights_ = np.full(len(members), 1.0 / len(members))
            self.task_ = "classification" if self.task == "auto" else self.task
            if self.task_ == "classification":
                width = base.output_width(members[0])
                self.classes_ = getattr(self.members, "classes_", np.arange(width))
            self.model_ = weighted_graph(list(members), self.weights_, self.task_, name="weighted_ensemble")
            return self
        x, y = checked_xy(x, y, f"{who}.fit")
        outputs = [m.predict(x, verbose=0) for m in members]
        width = np.shape(outputs[0])[-1]
        self.task_ = self.task if self.task != "auto" else (
            "classification" if base.is_classification_labels(y, width) else "regression")
        if self.task_ == "classification":
            if hasattr(self.members, "classes_"):
                self.classes_ = self.members.classes_
                base.check_classes(width, self.classes_, who)
                unknown = np.setdiff1d(np.unique(y), self.classes_)
                if unknown.size:
                    raise ValueError(f"{who}: y holds labels {unknown[:5].tolist()} the members were not "
                                     f"fitted on (their classes: {self.classes_.tolist()})")
                target = np.searchsorted(self.classes_, y)
            else:
                self.classes_, target = base.encode_labels(y, who, width)
            preds = [base.probabilities(m, x, out=o) for m, o in zip(members, outputs, strict=True)]
        else:
            target = y.astype("float64")
            preds = [np.asarray(o, dtype="float64") for o in outputs]
        self.weights_ = ensemble_weights(preds, target, self.method, self.task_, self.metric,
                                         self.temperature, self.ensemble_size)
        kind = "log_loss" if self.task_ == "classification" else "mse"
        self.member_scores_ = np.array([loss_of(kind, target, p) for p in preds])
        self.model_ = weighted_graph(list(members), self.weights_, self.task_, name="weighted_ensemble")
        return self
