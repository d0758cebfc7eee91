"""Gradient boosting of Keras networks (torchensemble's formulation), ending as ONE graph."""

import numpy as np

from kfuse.ensemble import base
from kfuse.ensemble.assemble import scaled_sum_graph
from kfuse.ensemble.conventions import Ensemble
from kfuse.ensemble.trainer_pool import Trainers
from kfuse.inputs.xy import checked_xy
from kfuse.trainers.members import copy_network, fit_member
from kfuse.utils.outputs import softmax


def pseudo_residual(target, running, task, n_classes=None):
    """onehot(y) - softmax(F) for classification, y - F for regression."""
    if task == "classification":
        return np.eye(n_classes)[target] - softmax(running)
    return target - running


class GradientBoostingClassifier(Ensemble):
    """Gradient boosting: member m fits, with MSE, the pseudo-residual of the running output.

    F_0 = 0 and F_m = F_{m-1} + learning_rate * h_m, so the graph outputs
    learning_rate * sum_m h_m(x) (logits for classification: a fixed `WeightedAverage`
    times `learning_rate * M` in a `Rescaling` layer). Classification residuals are
    onehot(y) - softmax(F_{m-1}); regression residuals y - F_{m-1}. With
    `validation_data`, boosting stops after `early_stopping_rounds` members without a
    better validation score (accuracy; MSE for regression) and keeps the best prefix.
    Members must end linear with one unit per class (or target column).

    Args:
        estimator (Callable | keras.Model | list): the network each stage fits to the
            pseudo-residuals (a builder, a model to clone, or a list of either; see
            `BaggingClassifier`), ending linear.
        n_estimators (int): boosting stages (members); fewer with early stopping.
        fit_params (dict | list[dict] | None): other keywords of Keras `Model.fit`, as for
            `BaggingClassifier` (a dict, or one per member).
        random_state (int | None): seed of the members' initialisation.
        verbose (int): 1 shows a progress bar over stages; 0 is silent.
        work_dir (str | os.PathLike | None): as for `BaggingClassifier`: finished stages are
            kept there and a second `fit` resumes.
        learning_rate (float): the shrinkage (> 0).
        validation_data (tuple | None): optional (x_val, y_val) for early stopping.
        early_stopping_rounds (int): members without improvement before stopping.
        epochs (int): epochs each member trains.
        batch_size (int): rows per training step.

    Each member trains with the optimizer its builder compiled (Adam when it compiled none);
    the loss is replaced by MSE, the pseudo-residuals' loss.

    Fitted attributes: `model_`, `estimators_`, `train_residuals_` (the residual each
    member was fitted to, last member), `validation_scores_`, `classes_`.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.ensemble import GradientBoostingClassifier

    x = np.random.default_rng(0).normal(size=(60, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)
    build = lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    gb = GradientBoostingClassifier(build, n_estimators=2, learning_rate=0.5, epochs=1).fit(x, y)
    gb.predict_proba(x).shape  # (60, 2)
    ```
    """

    task = "classification"

    def __init__(self, estimator, n_estimators=10, learning_rate=1.0, validation_data=None,
                 early_stopping_rounds=2, fit_params=None, random_state=None, verbose=0, work_dir=None,
                 epochs=1, batch_size=32):
        super().__init__(estimator, epochs, batch_size, fit_params, random_state, verbose, work_dir)
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.validation_data = validation_data
        self.early_stopping_rounds = early_stopping_rounds

    def _encode(self, y):
        if self.task == "classification":
            return np.searchsorted(self.classes_, y)
        return y.astype("float64").reshape(len(y), -1)

    def _score(self, running, target):
        if self.task == "classification":
            return float(np.mean(np.argmax(running, -1) == target))
        return -float(np.mean((running - target) ** 2))

    def _fit(self, x, y, claims):
        who = self._who()
        n_estimators = base.check_positive_int(self.n_estimators, "n_estimators", who)
        base.check_positive_int(self.early_stopping_rounds, "early_stopping_rounds", who)
        lr = base.check_positive_number(self.learning_rate, "learning_rate", who)
        specs = base.spec_list(self.estimator, who)
        if self.task == "classification":
            if not base.is_classification_labels(y, width=np.inf):
                raise ValueError(f"{who} needs integer class labels (or strings, or whole-number floats); received dtype {y.dtype}. "
                                 "For continuous targets use GradientBoostingRegressor")
            self.classes_, _ = base.encode_labels(y, who)
            self.n_classes_ = len(self.classes_)
        target = self._encode(y)
        width = self.n_classes_ if self.task == "classification" else target.shape[1]
        val = None
        if self.validation_data is not None:
            xv, yv = checked_xy(*self.validation_data, f"{who}.fit (validation_data)")
            val = (xv, self._encode(yv), np.zeros((len(yv), width)))
        running = np.zeros((len(target), width))
        settings = self._fit_settings()
        store = self._open_store(claims, x, y, *(self.validation_data or ()))
        bar = self._progress(n_estimators)
        members, scores, best, since = [], [], -np.inf, 0
        trainers = Trainers(specs, "regression", who, loss="mse")
        for i in range(n_estimators):
            residual = pseudo_residual(target, running, self.task, width)
            if store.has(base.member(i)):
                model, _ = base.load_member(store, i)
                net = model
            else:
                net = self._train(trainers, i, x, residual, width, settings.member(i))
                model = copy_network(net)
                store.save(base.member(i), model)
            members.append(model)
            running = running + lr * self._outputs(net, x)
            self.train_residuals_ = residual
            bar.update(i + 1)
            if val is not None:
                val = (val[0], val[1], val[2] + lr * self._outputs(net, val[0]))
                scores.append(self._score(val[2], val[1]))
                if scores[-1] > best:
                    best, since = scores[-1], 0
                else:
                    since += 1
                    if since >= self.early_stopping_rounds:
                        break
        if scores:
            members = members[: int(np.argmax(scores)) + 1]
        self.estimators_ = members
        self.validation_scores_ = np.asarray(scores)
        self.model_ = scaled_sum_graph(members, lr, name="gradient_boosting")
        return self

    @staticmethod
    def _outputs(model, x):
        out = np.asarray(model.predict(x, batch_size=256, verbose=0), dtype="float64")
        return out.reshape(len(out), -1)

    def _train(self, trainers, i, x, residual, width, settings):
        who = self._who()
        model = trainers.fresh(i, self._seed(i))
        if not base.ends_linear(model) or model.outputs[0].shape[-1] != width:
            raise ValueError(
                f"{who}: member_{i} must end in a linear layer with {width} units (it fits "
                f"pseudo-residuals with MSE); its output has shape {tuple(model.outputs[0].shape)} and "
                "a non-linear final activation or another width. End it in Dense(K) without activation."
            )
        fit_member(model, x, residual.astype("float32"), settings)
        return model

    def decision_function(self, x, batch_size=256):
        """The graph's output: learning_rate * sum of member outputs (logits)."""
        self._check_fitted()
        return np.asarray(self.model_.predict(self._tokenized(x), batch_size=batch_size, verbose=0))

    def predict_proba(self, x, batch_size=256):
        """softmax of `decision_function` (classification); the values for regression."""
        out = self.decision_function(x, batch_size)
        return softmax(out) if self.task == "classification" else out


class GradientBoostingRegressor(GradientBoostingClassifier):
    """Gradient boosting for regression: members fit y - F_{m-1}; same arguments.

    Example:

    ```python
    import keras, numpy as np
    from kfuse.ensemble import GradientBoostingRegressor

    x = np.random.default_rng(0).normal(size=(60, 3)).astype("float32"); y = x.sum(1)
    build = lambda: keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    gb = GradientBoostingRegressor(build, n_estimators=2, epochs=1).fit(x, y)
    ```
    """

    task = "regression"
