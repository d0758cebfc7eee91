"""Turn models, Stackers and raw arrays into aligned predictions for one data set.

`collect(models, x, y, task)` returns the task ("classification" or "regression"), the
labels as an array, and one `Prediction` per model: class probabilities `(n, k)` for
classification, values `(n,)` or `(n, t)` for regression. Every conversion it makes
(softmax of logits, sigmoid of a single logit, one-hot of hard labels) is recorded as a
note, so the report can say what it did.
"""

from dataclasses import dataclass, field

import numpy as np

# running each model is `running.py`'s job; its names stay importable from here
from kfuse.evaluation.running import (  # noqa: F401
    fused_model,
    head_task,
    is_array,
    raw_tokenized,
    run_model,
)
from kfuse.utils.outputs import sigmoid, softmax

TASKS = ("auto", "classification", "regression")


@dataclass
class Prediction:
    """One model's predictions on the evaluation data.

    Attributes:
        name: the model's name in the comparison.
        values: probabilities `(n, k)` (classification) or values (regression).
        source: how they were obtained ("array", "predict", "predict_proba").
        notes: conversions applied, in words.
        model: the object handed to `compare` (None for a raw array).

    Example:

    ```python
    import numpy as np, kfuse

    report = kfuse.compare({"net": np.array([[2.0, 0.0], [0.0, 1.0]])}, y=np.array([0, 1]))
    p = report.predictions["net"]
    p.values.sum(axis=1)  # [1., 1.]: the logits were softmaxed
    p.labels              # [0, 1]
    p.notes               # ["'net' outputs logits (rows not summing to 1): softmax applied"]
    ```
    """

    name: str
    values: np.ndarray
    source: str
    notes: list = field(default_factory=list)
    model: object = None

    @property
    def labels(self):
        """Predicted class per row (classification only)."""
        return np.argmax(self.values, axis=1)


# -- data -----------------------------------------------------------------------------
def load_data(x, y, allow_nonfinite=False):
    """(x, y) as arrays, through `kfuse.inputs`: a `tf.data.Dataset` is read into memory,
    row counts must agree, numeric inputs must be finite (unless `allow_nonfinite`)."""
    from kfuse.inputs import checks as input_checks
    from kfuse.inputs import values as input_values
    from kfuse.utils.tf_data import read_dataset

    if input_values.is_dataset(x):
        x, labels, _ = read_dataset(x, "compare()", need_labels=False)
        if y is None:
            if labels is None:
                raise ValueError(
                    "compare(): the tf.data.Dataset yields inputs only; pass the labels as `y` "
                    "or make it yield (inputs, labels) pairs"
                )
            y = labels
    if y is None:
        raise ValueError("compare(): labels `y` are required (or a tf.data.Dataset of (x, y))")
    y = np.asarray(y)
    if isinstance(x, dict) and not x:
        raise ValueError("compare(): `x` is an empty dict (empty data)")
    if x is not None:
        arrays = x if isinstance(x, dict) else {"x": x}
        arrays = {k: input_values.as_numpy(v) for k, v in arrays.items()}
        n = input_checks.check_rows(arrays, None, "compare()")
        if n != len(y) and len(y) and n:
            raise ValueError(f"compare(): the inputs have {n} rows but `y` has {len(y)} labels")
        input_checks.check_finite(arrays, "compare()", allow_nonfinite)
        x = arrays if isinstance(x, dict) else arrays["x"]
    n = len(y) if x is None else input_values.rows(next(iter(x.values())) if isinstance(x, dict) else x)
    if len(y) == 0 or n == 0:
        raise ValueError(f"compare(): empty data ({n} input rows, {len(y)} labels); nothing to score")
    return x, y


# -- task and conversion --------------------------------------------------------------
def _integral(a):
    return a.size == 0 or (np.issubdtype(a.dtype, np.number) and np.all(np.mod(a, 1) == 0))


def infer_task(outputs, y, head_tasks):
    """'classification' or 'regression' from kfuse heads, the labels and the outputs."""
    known = {t for t in head_tasks.values() if t}
    if len(known) > 1:
        raise ValueError(f"compare(): the models mix classification and regression heads: {head_tasks}")
    if known:
        return known.pop()
    if not _integral(y) or (y.ndim == 2 and y.shape[1] > 1 and not _is_one_hot(y)):
        return "regression"
    widths = {name: (o.shape[1] if o.ndim == 2 else 1) for name, o in outputs.items()}
    if all(w >= 2 for w in widths.values()) and (y.ndim == 1 or _is_one_hot(y)):
        return "classification"
    flat = [o for o in outputs.values() if o.ndim == 1 or o.shape[1] == 1]
    if flat and len(flat) == len(outputs) and y.dtype.kind in "biu" and all(o.dtype.kind in "biu" for o in flat):
        return "classification"  # integer predictions of integer labels: hard class labels
    binary_y = np.isin(y, (0, 1)).all() and (y.ndim == 1 or y.shape[1] == 1)
    in_unit = all(((o >= 0) & (o <= 1)).all() for o in flat)
    if len(flat) == len(outputs) and binary_y and (y.dtype.kind in "biu" or in_unit):
        # 0/1 integer labels: binary classification (one probability or logit per row)
        return "classification"
    return "regression"


def _is_one_hot(y):
    return y.ndim == 2 and y.shape[1] >= 2 and np.isin(y, (0, 1)).all() and np.all(y.sum(1) == 1)


def to_probabilities(name, raw, num_classes=None):
    """(probabilities (n, k), notes) from probabilities, logits, one logit, or hard labels.

    Hard labels are one-hot encoded over `num_classes` (default: their largest value + 1).
    """
    raw = np.asarray(raw, dtype="float64") if raw.dtype.kind != "f" else raw.astype("float64")
    notes = []
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw[:, 0]
    if raw.ndim == 1:
        if _integral(raw) and raw.size and raw.min() >= 0 and max(raw.max(), (num_classes or 0) - 1) >= 2:
            k = max(int(raw.max()) + 1, num_classes or 0)
            notes.append(f"'{name}' gave hard labels: one-hot used as probabilities")
            return np.eye(k)[raw.astype(int)], notes
        p = raw
        if raw.size and (raw.min() < 0 or raw.max() > 1):
            p = sigmoid(raw)
            notes.append(f"'{name}' outputs one logit per row: sigmoid applied")
        return np.stack([1.0 - p, p], axis=1), notes
    if raw.ndim != 2:
        raise ValueError(f"compare(): model '{name}' outputs shape {raw.shape}; expected (n, classes)")
    sums = raw.sum(axis=1)
    if raw.min() < -1e-6 or raw.max() > 1 + 1e-6 or not np.allclose(sums, 1.0, atol=1e-3):
        reason = "negative values" if raw.min() < -1e-6 else "rows not summing to 1"
        notes.append(f"'{name}' outputs logits ({reason}): softmax applied")
        return softmax(raw), notes  # raw is float64 here
    return raw / sums[:, None], notes


def class_labels(y, k):
    """Integer labels `(n,)` from sparse or one-hot `y`, checked against `k` classes."""
    if _is_one_hot(y):
        if y.shape[1] != k:
            raise ValueError(f"compare(): one-hot labels have {y.shape[1]} columns but the models output {k} classes")
        return y.argmax(axis=1)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not _integral(y):
        raise ValueError(
            f"compare(): classification needs integer class labels of shape (n,); received "
            f"shape {y.shape}, dtype {y.dtype}"
        )
    y = y.astype(int)
    bad = np.setdiff1d(np.unique(y), np.arange(k))
    if bad.size:
        raise ValueError(
            f"compare(): the labels hold classes {bad[:10].tolist()} that the models never "
            f"output (they output {k} classes, 0 to {k - 1})"
        )
    return y


def collect(models, x, y, task="auto", batch_size=256, allow_nonfinite=False):
    """(task, labels, {name: Prediction}) for a dict of models; see the module docstring."""
    if task not in TASKS:
        raise ValueError(f"compare(): `task` must be one of {TASKS}; received {task!r}")
    if not isinstance(models, dict) or not models:
        raise ValueError(f"compare(): `models` must be a non-empty dict of name -> model; received {models!r}")
    x, y = load_data(x, y, allow_nonfinite)
    heads = {name: head_task(m) for name, m in models.items()}
    raw, sources = {}, {}
    for name, model in models.items():
        guess = heads[name] or (task if task != "auto" else None)
        raw[name], sources[name] = run_model(name, model, x, guess, batch_size)
        if len(raw[name]) != len(y):
            raise ValueError(
                f"compare(): model '{name}' gives {len(raw[name])} predictions but `y` has "
                f"{len(y)} labels; they must match row for row"
            )
    _check_one_task(raw, sources, heads)
    inferred = infer_task(raw, y, heads)
    if task == "auto":
        task = inferred
    elif task == "regression":
        _check_regression(raw, y, heads)
    elif task == "classification" and not _integral(y):
        raise ValueError("compare(): task='classification' but the labels are not integer classes")
    if task == "regression":
        preds = {n: Prediction(n, r.astype("float64"), sources[n], [], models[n]) for n, r in raw.items()}
        return task, y.astype("float64"), preds
    wide = [r.shape[1] for r in raw.values() if r.ndim == 2 and r.shape[1] > 1]
    if wide:
        k_hint = max(wide)
    else:
        k_hint = int(max(r.max() for r in raw.values())) + 1
        if y.ndim == 1 and _integral(y):
            k_hint = max(k_hint, int(y.max()) + 1)
    preds = {}
    for name, r in raw.items():
        p, notes = to_probabilities(name, r, k_hint)
        preds[name] = Prediction(name, p, sources[name], notes, models[name])
    widths = {n: p.values.shape[1] for n, p in preds.items()}
    if len(set(widths.values())) > 1:
        raise ValueError(f"compare(): the models disagree on the number of classes: {widths}")
    k = next(iter(widths.values()))
    return task, class_labels(column_ids(models, sources, y), k), preds


def _check_one_task(raw, sources, heads):
    """Refuse a classifier (class probabilities over 3+ classes, or a classification head)
    beside a regressor (a regression head, or one non-integer value per row)."""
    classifiers = {n: r.shape[1] for n, r in raw.items()
                   if r.ndim == 2 and r.shape[1] >= 2
                   and (sources[n] == "predict_proba" or heads[n] == "classification")}
    regressors = [n for n, r in raw.items() if n not in classifiers and (
        heads[n] == "regression" or (
            max(classifiers.values(), default=0) >= 3 and (r.ndim == 1 or r.shape[1] == 1)
            and not _integral(r)))]
    if classifiers and regressors:
        c, k = next(iter(classifiers.items()))
        raise ValueError(
            f"compare(): model '{c}' is a classifier ({k} class probabilities per row) but "
            f"'{regressors[0]}' is a regressor (one value per row); compare() scores one task "
            "at a time: compare the classifiers and the regressors separately"
        )


def column_ids(models, sources, y):
    """Labels as probability-column indices: a model with scikit-learn's ``classes_``
    (labels 1..3, strings) orders its ``predict_proba`` columns by them, so ``y`` is mapped
    through them; every such model must agree on ``classes_``."""
    orders = {n: np.asarray(m.classes_) for n, m in models.items()
              if sources.get(n) == "predict_proba" and getattr(m, "classes_", None) is not None}
    if not orders or y.ndim != 1:
        return y
    name, classes = next(iter(orders.items()))
    for other, theirs in orders.items():
        if theirs.shape != classes.shape or not np.array_equal(theirs, classes):
            raise ValueError(
                f"compare(): models '{name}' and '{other}' were fitted on different classes "
                f"({classes.tolist()} and {theirs.tolist()}); compare() needs one label set"
            )
    if np.array_equal(classes, np.arange(len(classes))):
        return y
    unknown = np.setdiff1d(np.unique(y), classes)
    if unknown.size:
        raise ValueError(
            f"compare(): the labels hold {unknown[:10].tolist()}, which model '{name}' never "
            f"saw (its classes_ are {classes.tolist()})"
        )
    index = {v: i for i, v in enumerate(classes.tolist())}
    return np.array([index[v] for v in y.tolist()], "int64")


def _check_regression(raw, y, heads):
    classifiers = [n for n, t in heads.items() if t == "classification"]
    target_width = 1 if y.ndim == 1 else y.shape[1]
    for name, r in raw.items():
        width = 1 if r.ndim == 1 else r.shape[1]
        if name in classifiers or width != target_width:
            raise ValueError(
                f"compare(): regression metrics asked of a classifier: model '{name}' outputs "
                f"{width} column(s) per row (class scores) for targets of width {target_width}. "
                "Use task='classification' (or 'auto')."
            )
