"""What a network's outputs and labels mean, in numpy: the one place kfuse computes them.

- `to_probabilities` (`softmax`, `sigmoid`): probabilities from logits, without overflow;
- `class_ids`: class ids from labels given as ids or one-hot rows;
- `row_scores` and `score`: per row right / wrong (classification) or squared error
  (regression), and their (weighted) mean: accuracy or mean squared error.

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


def softmax(logits):
    """Softmax over the last axis, shifted by each row's largest value (no overflow)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(logits):
    """1 / (1 + exp(-z)) per value without overflow: only exp(-|z|) is taken, so a large
    negative logit gives its tiny probability, not a warning and 0 from an infinity."""
    e = np.exp(-np.abs(logits))
    return np.where(logits >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


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
        raise ValueError(f"{where} gives no probabilities (activation {activation!r}); use its outputs as they are")
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


def row_scores(activation, predicted, y, threshold=0.5):
    """Per row: 1.0 / 0.0 for a right / wrong class (`activation` "softmax": the arg-max;
    "sigmoid": the mean over units of `predicted > threshold` agreeing with `y > 0.5`), or
    the squared error, the mean over units (`activation` None: regression)."""
    predicted = np.asarray(predicted, "float64")
    n = len(predicted)
    y = np.asarray(y)
    if activation is None:
        return np.mean((predicted.reshape(n, -1) - y.reshape(n, -1).astype("float64")) ** 2, axis=1)
    if activation == "softmax":
        return (predicted.argmax(-1) == class_ids(y)).astype("float64")
    return np.mean((predicted.reshape(n, -1) > threshold) == (y.reshape(n, -1) > 0.5), axis=1)


def score(activation, predicted, y, sample_weight=None, threshold=0.5):
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
    return float(np.average(row_scores(activation, predicted, y, threshold), weights=sample_weight))
