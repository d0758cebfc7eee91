"""`cv=` resolved to row splits: k-fold, any scikit-learn splitter, holdout, or prefit."""

import numbers
import warnings

import numpy as np

from kfuse.utils.outputs import class_ids

PREFIT_WARNING = (
    "Stacker(cv='prefit'): the bases are used as they are and the meta-learner trains on "
    "their predictions for the rows passed to fit(). If the bases were trained on those "
    "rows, the meta-learner learns from over-confident predictions (the stacking leak) and "
    "the stack can score below its best base. Pass rows the bases never saw, or use cv=5."
)


class Plan:
    """How the rows are split: `kind` is 'kfold', 'holdout' or 'prefit'.

    `splits` is a list of (train rows, held-out rows); empty for 'prefit'. `strata` is
    what the folds stratify on, one per row (`strata`), or None: folds drawn later over
    some of these rows (the selection's inner folds, the level-2 folds) take
    `strata[rows]` rather than reading the labels again.
    """

    def __init__(self, kind, splits, description, strata=None):
        self.kind = kind
        self.splits = splits
        self.description = description
        self.strata = strata

    @property
    def n_splits(self):
        return len(self.splits)

    def held_out_rows(self, n):
        """Rows predicted by at least one fold (all rows for a partition; holdout rows)."""
        if self.kind == "prefit":
            return np.arange(n)
        seen = np.zeros(n, bool)
        for _, test in self.splits:
            seen[test] = True
        return np.flatnonzero(seen)


def time_ordered(cv):
    """Whether the splitter `cv` keeps time order: a scikit-learn `TimeSeriesSplit`, or any
    splitter object whose class name says so (contains "TimeSeries", e.g. a purged or
    grouped variant). Its rows are taken to be in time order, so work derived from its
    out-of-fold rows (the Stacker's inner selection folds, the level-two folds of
    `levels=2`) must also split forward in time (`forward_folds`)."""
    from sklearn.model_selection import TimeSeriesSplit

    if isinstance(cv, (str, numbers.Number)) or not hasattr(cv, "split"):
        return False
    return isinstance(cv, TimeSeriesSplit) or "timeseries" in type(cv).__name__.lower().replace("_", "")


def forward_folds(k, rows, gap=0):
    """Forward-in-time splits of `rows` (positions into the training data, whose order is
    time order): `TimeSeriesSplit(k, gap=gap)` over `rows` sorted by position, as
    (train, held-out) positions into `rows`, each training part before its held-out part.
    k shrinks where the rows are too few; under 2 splits it gives (None, reason), else
    (splits, None). The earliest chunk of `rows` is never held out: work built on these
    splits has no prediction there (the Stacker's inner selection folds, level-two folds).
    """
    from sklearn.model_selection import TimeSeriesSplit

    gap = int(gap) if isinstance(gap, numbers.Integral) and gap > 0 else 0
    order = np.argsort(np.asarray(rows), kind="stable")
    n = len(order)
    # TimeSeriesSplit(k): k + 1 chunks of n // (k + 1) rows; the first training part is
    # what remains after the gap and the k held-out chunks
    while k >= 2 and (n // (k + 1) < 1 or n - gap - k * (n // (k + 1)) <= 0):
        k -= 1
    if k < 2:
        return None, f"the {n} out-of-fold rows allow no forward-in-time cross-validation" + (
            f" with gap={gap}" if gap else ""
        )
    splitter = TimeSeriesSplit(n_splits=k, gap=gap)
    return [(order[tr], order[te]) for tr, te in splitter.split(order)], None


def describe_cv(cv):
    """A stable text for `cv` (used in the work_dir fingerprint)."""
    if isinstance(cv, (str, numbers.Number)):
        return repr(cv)
    return repr(cv)


def strata(y, head):
    """What stratified folds keep in proportion, one per row: the class ids (softmax
    head), the 0/1 label (one sigmoid unit), or None (regression, multi-label).

    Example:

    ```python
    import numpy as np
    from kfuse.layers.heads import Classification
    from kfuse.stacking.folds import strata

    strata(np.eye(3)[[2, 0, 1]], Classification(3))  # [2, 0, 1]: one-hot rows as class ids
    ```
    """
    if head is None or head.activation is None:
        return None
    if head.activation == "softmax":
        return class_ids(y)
    if y.ndim == 1 or y.shape[1] == 1:  # binary
        return y.reshape(len(y))
    return None  # multi-label: no stratification


def _check_class_counts(labels, k):
    classes, counts = np.unique(labels, return_counts=True)
    smallest = int(counts.min())
    if k > smallest:
        worst = classes[counts.argmin()].item()
        raise ValueError(
            f"Stacker: cv={k} folds, but class {worst!r} has only {smallest} row(s); "
            f"stratified folds need at least cv rows of every class. Use cv<={smallest} "
            "or gather more rows of that class."
        )


def kfold(k, strata, n, seed):
    """The splits of a shuffled k-fold over `n` rows: stratified on `strata` (one per row,
    see `strata`) when given, else plain; (train rows, held-out rows) pairs.

    Example:

    ```python
    import numpy as np
    from kfuse.stacking.folds import kfold

    splits = kfold(2, np.array([0, 0, 1, 1]), 4, seed=0)  # each half holds one row per class
    [sorted(held) for _, held in splits]
    ```
    """
    from sklearn import model_selection

    if k < 2:
        raise ValueError(f"Stacker: cv={k} folds; out-of-fold stacking needs cv >= 2")
    if k > n:
        raise ValueError(f"Stacker: cv={k} folds but only {n} rows")
    if strata is not None:
        _check_class_counts(strata, k)
        splitter = model_selection.StratifiedKFold(k, shuffle=True, random_state=seed)
    else:
        splitter = model_selection.KFold(k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(n), strata))


def resolve_cv(cv, y, head, seed=0):
    """Turn `cv` into a `Plan` for `len(y)` rows."""
    from sklearn import model_selection

    n = len(y)
    labels = strata(y, head)
    if isinstance(cv, str):
        if cv != "prefit":
            raise ValueError(
                f"Stacker: cv must be an int, a float, a splitter or 'prefit'; received {cv!r}"
            )
        warnings.warn(PREFIT_WARNING, UserWarning, stacklevel=3)
        return Plan("prefit", [], "prefit", labels)
    if isinstance(cv, bool):
        raise TypeError(
            f"Stacker: cv must be an int, a float, a splitter or 'prefit'; received {cv!r}"
        )
    if isinstance(cv, numbers.Integral):
        kind = "StratifiedKFold" if labels is not None else "KFold"
        return Plan("kfold", kfold(int(cv), labels, n, seed), f"{kind}({int(cv)})", labels)
    if isinstance(cv, numbers.Real):
        fraction = float(cv)
        if not 0.0 < fraction < 1.0:
            raise ValueError(
                f"Stacker: a float cv is the holdout fraction for blending and must lie in (0, 1); "
                f"received {cv!r}"
            )
        if labels is not None:
            _check_class_counts(labels, 2)
        fit_rows, held = model_selection.train_test_split(
            np.arange(n), test_size=fraction, random_state=seed, stratify=labels
        )
        return Plan("holdout", [(np.sort(fit_rows), np.sort(held))], f"holdout({fraction})", labels)
    if hasattr(cv, "split") and hasattr(cv, "get_n_splits"):
        splits = [
            (np.asarray(tr), np.asarray(te))
            for tr, te in cv.split(np.zeros(n), labels if labels is not None else y)
        ]
        if not splits:
            raise ValueError(f"Stacker: the splitter {cv!r} produced no splits")
        for i, (tr, te) in enumerate(splits):
            if len(tr) == 0 or len(te) == 0:
                raise ValueError(f"Stacker: split {i} of {cv!r} has an empty train or test part")
        return Plan("kfold", splits, repr(cv), labels)
    raise TypeError(
        "Stacker: cv must be an int (folds), a float (holdout fraction), a scikit-learn "
        f"splitter (with split/get_n_splits) or 'prefit'; received {type(cv).__name__}"
    )
