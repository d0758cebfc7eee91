"""What a network's outputs and labels mean, in numpy: the one place kfuse computes them.

- `to_probabilities` (`softmax`, `sigmoid`): probabilities from logits, without overflow;
- `class_ids`: class ids from labels given as ids or one-hot rows;
- `row_scores`, `score` and `loss`: per row right / wrong (classification) or squared
  error (regression), their (weighted) mean (accuracy or mean squared error), and the
  log loss; `beats`: whether one set of predictions is better than another beyond noise.

Heads, the Stacker, its selection and fold scores, the ensembles and the evaluation all
call these, so a probability or a score means one thing everywhere.

Example:

```python
import numpy as np
from kfuse.utils.outputs import class_ids, score, to_probabilities

to_probabilities(np.array([[0.0, 0.0]]), "softmax")            # [[0.5, 0.5]]
class_ids(np.array([[0, 1], [1, 0]]))                           # [1, 0]
score("softmax", np.array([[0.9, 0.1], [0.2, 0.8]]), [0, 0])    # 0.5: accuracy
```
"""

import numpy as np

#: the clip of probabilities in `loss`
EPS = 1e-15


def softmax(logits):
    """Softmax over the last axis, shifted by each row's largest value (no overflow)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(logits):
    """1 / (1 + exp(-z)) per value, as 0.5 * (1 + tanh(z / 2)): no exp of a large number,
    so no overflow (1 / (1 + exp(-z)) overflows for z below about -709 in float64, -88 in
    float32)."""
    return 0.5 * (1.0 + np.tanh(0.5 * logits))


def to_probabilities(logits, activation, where="head"):
    """Softmax (over the last axis) or sigmoid of `logits`, in numpy: float64 stays
    float64, anything else is computed in float32.

    Example:

    ```python
    import numpy as np
    from kfuse.utils.outputs import to_probabilities

    to_probabilities(np.array([[-1000.0], [0.0]]), "sigmoid")  # [[0.0], [0.5]], no overflow
    ```
    """
    if activation not in ("softmax", "sigmoid"):
        raise ValueError(
            f"{where} gives no probabilities (activation {activation!r}); use its outputs as they are"
        )
    logits = np.asarray(logits)
    logits = logits.astype("float64" if logits.dtype == np.float64 else "float32")
    return softmax(logits) if activation == "softmax" else sigmoid(logits)


def class_ids(y):
    """Class ids, one per row, from labels given as ids (`(n,)` or `(n, 1)`) or as one-hot
    (or probability) rows `(n, k)`, k > 1 (the arg-max).

    Example:

    ```python
    import numpy as np
    from kfuse.utils.outputs import class_ids

    class_ids(np.array([[2], [0]])), class_ids(np.eye(3)[[2, 0]])  # [2, 0] both
    ```
    """
    y = np.asarray(y)
    return y.argmax(-1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(len(y))


def activation_of(head):
    """The activation a head's probabilities come from: "softmax", "sigmoid" or None
    (regression). `head` is a `kfuse.heads` head or that activation itself."""
    return head if head is None or isinstance(head, str) else head.activation


def metric_name(head):
    """The metric `score` computes for `head`: "accuracy", or "mse" for regression."""
    return "mse" if activation_of(head) is None else "accuracy"


def row_scores(head, predicted, y, threshold=0.5):
    """Per row: 1.0 / 0.0 for a right / wrong class ("softmax": the arg-max; "sigmoid": the
    mean over units of `predicted > threshold` agreeing with `y > 0.5`), or the squared
    error, the mean over units (regression). `head`: a head, or its activation."""
    activation = activation_of(head)
    predicted = np.asarray(predicted, "float64")
    n = len(predicted)
    y = np.asarray(y)
    if activation is None:
        return np.mean((predicted.reshape(n, -1) - y.reshape(n, -1).astype("float64")) ** 2, axis=1)
    if activation == "softmax":
        return (predicted.argmax(-1) == class_ids(y)).astype("float64")
    return np.mean((predicted.reshape(n, -1) > threshold) == (y.reshape(n, -1) > 0.5), axis=1)


def score(head, predicted, y, sample_weight=None, threshold=0.5):
    """Accuracy (classification) or mean squared error (regression) of `predicted`, each
    row weighted by `sample_weight`: the mean of `row_scores`. For a sigmoid, `threshold`
    0.5 reads probabilities, 0.0 logits.

    Example:

    ```python
    import numpy as np
    from kfuse.utils.outputs import score

    score(None, np.array([[1.0], [3.0]]), np.array([1.0, 1.0]))  # 2.0: mean squared error
    ```
    """
    return float(np.average(row_scores(head, predicted, y, threshold), weights=sample_weight))


def loss(head, predicted, y, sample_weight=None):
    """Log loss of probabilities (softmax: -log p of the true class; sigmoid: binary
    cross-entropy per unit), clipped to [EPS, 1 - EPS], or the mean squared error of values
    (regression); weighted by rows."""
    activation = activation_of(head)
    if activation is None:
        return score(head, predicted, y, sample_weight)
    predicted = np.clip(np.asarray(predicted, "float64"), EPS, 1.0 - EPS)
    n = len(predicted)
    y = np.asarray(y)
    if activation == "softmax":
        per_row = -np.log(predicted[np.arange(n), class_ids(y).astype("int64")])
    else:
        p, t = predicted.reshape(n, -1), (y.reshape(n, -1) > 0.5)
        per_row = -np.mean(np.where(t, np.log(p), np.log(1.0 - p)), axis=1)
    return float(np.average(per_row, weights=sample_weight))


def standard_error(diff, w):
    """Standard error of the weighted mean of the per-row differences `diff` (weights `w`
    summing to one), from the unbiased variance: the factor
    ``1 / (1 - sum(w**2))`` is n / (n - 1) for equal weights. Without it a challenger that
    wins on one row and ties on every other comes out just outside its own noise."""
    spread = float(np.sum(w**2 * (diff - np.sum(w * diff)) ** 2))
    effective = 1.0 - float(np.sum(w**2))
    return float(np.sqrt(spread / effective)) if effective > 0 else float("inf")


def beats(head, challenger, incumbent, y, sample_weight=None):
    """Whether the `challenger` predictions beat the `incumbent`'s on these rows.

    By the metric (accuracy, or MSE) where the two differ by more than one standard error
    of the paired per-row difference; within that noise, by the smoother log loss
    (classification; MSE again for regression). A tie keeps the incumbent."""
    diff = row_scores(head, challenger, y) - row_scores(head, incumbent, y)
    if activation_of(head) is None:
        diff = -diff  # lower squared error is better
    w = np.ones(len(diff)) if sample_weight is None else np.asarray(sample_weight, "float64")
    w = w / w.sum()
    mean = float(np.sum(w * diff))
    noise = standard_error(diff, w)
    if abs(mean) > noise:
        return mean > 0
    return (
        loss(head, challenger, y, sample_weight) < loss(head, incumbent, y, sample_weight) - 1e-12
    )
