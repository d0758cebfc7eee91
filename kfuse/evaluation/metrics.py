"""Per-model scores, computed with scikit-learn (only ECE, which it lacks, is written here)."""

import warnings

import numpy as np
from sklearn import metrics as skm

CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc_ovr",
    "log_loss",
    "brier",
    "ece",
)
REGRESSION_METRICS = ("mae", "rmse", "r2", "mape")
#: metrics where lower is better (used for ablation drops and for highlighting)
LOWER_IS_BETTER = {"log_loss", "brier", "ece", "mae", "rmse", "mape"}


def resolve_metrics(task, metrics):
    """The metric names to compute; a clear error for unknown or wrong-task names."""
    valid = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if metrics is None:
        return list(valid)
    if isinstance(metrics, str):
        metrics = [metrics]
    other = REGRESSION_METRICS if task == "classification" else CLASSIFICATION_METRICS
    chosen = []
    for m in metrics:
        m = "roc_auc_ovr" if m == "roc_auc" and task == "classification" else m  # binary's label
        if m in other:
            kind = "regression" if task == "classification" else "classification"
            raise ValueError(
                f"compare(): {kind} metric {m!r} asked of a {task} task; {task} metrics are {list(valid)}"
            )
        if m not in valid:
            raise ValueError(f"compare(): unknown metric {m!r}; {task} metrics are {list(valid)}")
        chosen.append(m)
    return chosen


def expected_calibration_error(y, proba, bins=15):
    """Top-label ECE: sum over equal-width confidence bins of |accuracy - confidence| * share."""
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def reliability_bins(y, proba, bins=10):
    """(mean confidence, accuracy, count) per equal-width confidence bin (empty bins dropped)."""
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = [
        (confidence[index == b].mean(), correct[index == b].mean(), int((index == b).sum()))
        for b in range(bins)
        if (index == b).any()
    ]
    return np.array(rows).reshape(-1, 3)


def classification_scores(y, proba, names, notes):
    """Dict metric -> value for one model; metrics undefined on this data become NaN + note."""
    k = proba.shape[1]
    labels = np.arange(k)
    pred = proba.argmax(axis=1)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            if name == "accuracy":
                out[name] = skm.accuracy_score(y, pred)
            elif name == "balanced_accuracy":
                out[name] = skm.balanced_accuracy_score(y, pred)
            elif name.split("_")[0] in ("precision", "recall", "f1"):
                metric, average = name.split("_")
                fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[metric]
                out[name] = fn(y, pred, labels=labels, average=average, zero_division=0)
            elif name == "roc_auc_ovr":
                out[name] = _roc_auc(y, proba, labels, notes)
            elif name == "log_loss":
                out[name] = skm.log_loss(y, np.clip(proba, 1e-15, 1.0), labels=labels)
            elif name == "brier":
                out[name] = skm.brier_score_loss(y, proba, labels=labels)
            elif name == "ece":
                out[name] = expected_calibration_error(y, proba)
    return {k_: float(v) for k_, v in out.items()}


def per_class_scores(y, pred, k):
    """DataFrame (one row per class 0..k-1): precision, recall, f1, support."""
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, n = skm.precision_recall_fscore_support(y, pred, labels=np.arange(k), zero_division=0)
    return pd.DataFrame({"precision": p, "recall": r, "f1": f, "support": n}, index=pd.RangeIndex(k, name="class"))


def _roc_auc(y, proba, labels, notes):
    present = np.unique(y)
    if present.size < 2:
        notes.add("ROC-AUC is undefined: the labels hold a single class")
        return float("nan")
    if proba.shape[1] == 2:
        return skm.roc_auc_score(y, proba[:, 1])
    if present.size < len(labels):
        # classes absent from y have no ROC curve: average over the classes present
        notes.add(
            f"ROC-AUC averaged over the {present.size} classes present in the labels "
            f"(of {len(labels)})"
        )
        onehot = np.eye(len(labels))[y][:, present]
        return skm.roc_auc_score(onehot, proba[:, present], average="macro")
    return skm.roc_auc_score(y, proba, multi_class="ovr", labels=labels)


def regression_scores(y, values, names, notes=None):
    """Dict metric -> value for one regression model. MAPE is NaN, with a note, when a
    target is 0: a percentage of 0 is undefined (scikit-learn divides by eps, ~1e12)."""
    values = _align(y, values)
    zeros = int(np.sum(np.abs(np.asarray(y, "float64")) < np.finfo("float64").eps))
    if zeros and "mape" in names:
        if notes is not None:
            notes.add(
                f"MAPE not computed: {zeros} of {len(y)} targets are 0, where a percentage "
                "error is undefined; read mae / rmse instead"
            )
        names = [n for n in names if n != "mape"]
    fns = {
        "mae": skm.mean_absolute_error,
        "rmse": skm.root_mean_squared_error,
        "r2": skm.r2_score,
        "mape": skm.mean_absolute_percentage_error,
    }
    scores = {name: float(fns[name](y, values)) for name in names}
    return {**scores, "mape": float("nan")} if zeros and "mape" not in scores else scores


def _align(y, values):
    if y.ndim == 1 and values.ndim == 2 and values.shape[1] == 1:
        return values[:, 0]
    return values


def errors(task, y, prediction):
    """Per-row error indicator (classification, bool) or absolute error (regression)."""
    if task == "classification":
        return prediction.labels != y
    diff = np.abs(_align(y, prediction.values) - y)
    return diff if diff.ndim == 1 else diff.mean(axis=1)


def score_table(task, y, predictions, names):
    """pandas DataFrame: one row per model, one column per metric; plus notes (a set)."""
    import pandas as pd

    notes = set()
    rows = {}
    for name, p in predictions.items():
        try:
            if task == "classification":
                rows[name] = classification_scores(y, p.values, names, notes)
            else:
                rows[name] = regression_scores(y, p.values, names, notes)
        except ValueError as error:  # scikit-learn's words, with the model and the data named
            raise ValueError(
                f"compare(): scoring model '{name}' failed on this {task} task: {error} "
                f"(labels: shape {tuple(np.shape(y))}, dtype {np.asarray(y).dtype}; the model's "
                f"output: shape {tuple(np.shape(p.values))}). Check that y matches the model: class "
                "ids for a classifier, targets with task='regression' for a regressor"
            ) from None
    table = pd.DataFrame.from_dict(rows, orient="index")[names]
    if task == "classification" and predictions and all(p.values.shape[1] == 2 for p in predictions.values()):
        table = table.rename(columns={"roc_auc_ovr": "roc_auc"})  # binary: no one-vs-rest
    table.index.name = "model"
    return table, notes
