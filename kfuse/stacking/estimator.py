"""The scikit-learn face of `kfuse.Stacker`: predictions, probabilities, score, tags, seeds.

`predict` returns class labels for classification heads (a 0/1 matrix for `MultiLabel`)
and values for regression; `predict_proba` returns one column per class (a `Binary`
head: two columns, P(0) and P(1), as scikit-learn's classifiers do); `decision_function`
returns the logits. `score` is accuracy or R^2, as scikit-learn's mixins define it.
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from kfuse.branches.raw_inputs import tokenized_for_branches
from kfuse.inputs.xy import arrays_and_labels
from kfuse.layers.heads import Binary, MultiLabel, get_head


def resolve_seed(random_state, seed):
    """The integer seed: `random_state` (int, RandomState or Generator) if given, else `seed`."""
    if random_state is None:
        return int(seed)
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    raise ValueError(
        f"Stacker: random_state must be None, an int, a numpy RandomState or Generator; "
        f"received {random_state!r}"
    )


def classes_of(head):
    """The class labels `predict` returns (None for regression)."""
    if head.activation is None:
        return None
    if isinstance(head, Binary):
        return np.array([0, 1])
    return np.arange(head.units)


def labels_from_outputs(head, outputs, classes):
    if head.activation is None:
        return outputs
    if isinstance(head, MultiLabel):
        return (outputs > 0).astype("int64")
    if isinstance(head, Binary):
        return classes[(outputs.reshape(len(outputs)) > 0).astype("int64")]
    return classes[outputs.argmax(axis=-1)]


def estimator_tags(tags, kind):
    """scikit-learn >= 1.6 tags: a classifier or a regressor, by the head."""
    from sklearn.utils import ClassifierTags, RegressorTags

    tags.estimator_type = kind
    if kind == "classifier":
        tags.classifier_tags = ClassifierTags()
        tags.regressor_tags = None
    else:
        tags.regressor_tags = RegressorTags()
        tags.classifier_tags = None
    return tags


class EstimatorOutputs:
    """`decision_function`, `predict`, `predict_proba`, `score`, `evaluate` over `model_`."""

    def _raw(self, x, where):
        """`x` with the raw strings of a branch over a KerasHub Task tokenized."""
        return tokenized_for_branches(self.branches_, x, where)

    def decision_function(self, x, batch_size=256, allow_nonfinite=False):
        """The fused model's raw outputs: logits for classification heads, values for regression."""
        check_is_fitted(self, "model_")
        arrays, _, _ = arrays_and_labels(self._raw(x, "Stacker"), None, self.input_names, "Stacker", allow_nonfinite)
        return self.model_.predict(arrays, batch_size=batch_size, verbose=0, allow_nonfinite=True)

    def predict(self, x, batch_size=256, allow_nonfinite=False):
        """Class labels (0/1 per label for MultiLabel) for classification; values for regression."""
        outputs = self.decision_function(x, batch_size, allow_nonfinite)
        return labels_from_outputs(self.head_, outputs, self.classes_)

    def predict_proba(self, x, batch_size=256, allow_nonfinite=False):
        """Class probabilities, one column per class (a binary head: two columns)."""
        outputs = self.decision_function(x, batch_size, allow_nonfinite)
        if self.head_.activation is None:
            raise ValueError(f"Stacker: the head {self.head_} is a regression head; it gives no probabilities")
        proba = self.head_.probabilities(outputs)
        if isinstance(self.head_, Binary):
            proba = np.concatenate([1.0 - proba, proba], axis=-1)
        return proba

    def score(self, x, y=None, sample_weight=None):
        """Accuracy (classification) or the coefficient of determination R^2 (regression)."""
        from sklearn.metrics import accuracy_score, r2_score

        check_is_fitted(self, "model_")
        arrays, y, _ = arrays_and_labels(self._raw(x, "Stacker.score"), y, self.input_names, "Stacker.score")
        predicted = self.predict(arrays)
        if self.head_.activation is None:
            return float(r2_score(np.reshape(y, predicted.shape), predicted, sample_weight=sample_weight))
        truth = np.asarray(y).reshape(predicted.shape)
        return float(accuracy_score(truth, predicted, sample_weight=sample_weight))

    def evaluate(self, x, y=None, batch_size=256):
        """The head's loss and metrics on (x, y), as a dict."""
        check_is_fitted(self, "model_")
        arrays, y, _ = arrays_and_labels(self._raw(x, "Stacker.evaluate"), y, self.input_names, "Stacker.evaluate")
        return self.model_.evaluate(arrays, y, batch_size=batch_size, verbose=0, return_dict=True)

    @property
    def _estimator_type(self):  # scikit-learn < 1.6 reads this
        head = get_head(self.head) if not isinstance(self.head, str) else None
        return "regressor" if head is not None and head.activation is None else "classifier"

    def __sklearn_tags__(self):
        return estimator_tags(super().__sklearn_tags__(), self._estimator_type)
