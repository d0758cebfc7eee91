"""The checks every input passes: one row count, finite numbers (inputs and labels, a
`tf.data` input's first batch), whole numbers for integer inputs. Each error names the
input and its first bad rows.

Example:

```python
import numpy as np
from kfuse.inputs.checks import check_rows, nonfinite_rows

check_rows({"a": np.zeros((3, 2)), "b": np.zeros(3)}, np.arange(3))  # 3
nonfinite_rows(np.array([[0.0, 1.0], [np.inf, 0.0], [2.0, np.nan]])).tolist()  # [1, 2]
```
"""

import numpy as np

from kfuse.inputs.values import as_numpy, is_array_like, is_dataset, rows

#: how many bad row indices an error lists
SHOW_ROWS = 5
#: what to do about non-finite inputs, after the count of bad rows
INPUT_ADVICE = ". Clean or impute them, or pass allow_nonfinite=True if the model handles them."


def check_rows(arrays, y=None, where="kfuse"):
    """The common row count of the named arrays (and `y`); a ValueError naming each otherwise."""
    counts = {k: rows(v) for k, v in arrays.items()}
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"'{k}': {n}" for k, n in counts.items())
        raise ValueError(f"{where}: the inputs have different numbers of rows ({listing}); every input needs one row per example")
    n = next(iter(counts.values())) if counts else None
    if y is not None and n is not None and rows(y) != n:
        listing = ", ".join(f"'{k}': {c}" for k, c in counts.items())
        raise ValueError(f"{where}: x has {n} rows ({listing}) but y has {rows(y)}; they must match")
    return n


def nonfinite_rows(array):
    """Indices of the rows of a numeric array holding NaN or infinity (none for strings)."""
    array = np.asarray(array) if not isinstance(array, np.ndarray) else array
    if array.dtype.kind not in "fc" or array.size == 0:
        return np.zeros(0, "int64")
    bad = ~np.isfinite(array)
    if array.ndim > 1:
        bad = bad.reshape(len(array), -1).any(axis=1)
    elif array.ndim == 0:
        return np.zeros(0, "int64") if not bad else np.zeros(1, "int64")
    return np.flatnonzero(bad)


def refuse_nonfinite(value, where, subject, what="rows", advice=INPUT_ADVICE):
    """Raise a ValueError if the numeric array `value` holds NaN / inf: "`where`: `subject`
    NaN or infinite values in `what` [first rows] (count of total)`advice`".

    Example:

    ```python
    import numpy as np
    from kfuse.inputs.checks import refuse_nonfinite
    refuse_nonfinite(np.ones(3), "fit", "the targets y has")  # finite: no error
    ```
    """
    bad = nonfinite_rows(value)
    if bad.size:
        more = f" and {bad.size - SHOW_ROWS} more" if bad.size > SHOW_ROWS else ""
        raise ValueError(
            f"{where}: {subject} NaN or infinite values in {what} {bad[:SHOW_ROWS].tolist()}{more} "
            f"({bad.size} of {rows(value)}){advice}"
        )


def check_finite(arrays, where="kfuse", allow_nonfinite=False, what="rows", advice=INPUT_ADVICE):
    """Raise a ValueError naming the first input with NaN / inf and its first bad rows."""
    if allow_nonfinite:
        return
    for key, value in arrays.items():
        if isinstance(value, np.ndarray):
            refuse_nonfinite(value, where, f"input '{key}' has", what, advice)


def check_integral(arrays, dtypes, where="kfuse"):
    """Raise a ValueError naming an integer input (``dtypes``: input name -> dtype, token
    ids for an ``Embedding``, say) fed float data with non-whole values, which Keras would
    truncate to other ids without a word. Whole floats (``3.0``) pass.

    Example:

    ```python
    import numpy as np
    from kfuse.inputs import check_integral
    check_integral({"tokens": np.array([[1.0, 2.0]])}, {"tokens": "int32"})  # whole: no error
    ```
    """
    for key, dtype in dtypes.items():
        value = arrays.get(key)
        if dtype is None or not str(dtype).startswith(("int", "uint")):
            continue
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fc" or value.ndim == 0:
            continue
        with np.errstate(invalid="ignore"):
            fractional = np.isfinite(value) & (value != np.round(value))
        if not fractional.any():
            continue
        bad = np.flatnonzero(fractional.reshape(len(value), -1).any(axis=1))
        example = float(np.real(value[fractional][0]))
        raise ValueError(
            f"{where}: input '{key}' is an integer input ({dtype}: token or category ids) "
            f"but the data is {value.dtype} with non-whole values in rows "
            f"{bad[:SHOW_ROWS].tolist()} (e.g. {example:g}); Keras would truncate them to "
            "other ids. Pass the ids as integers (x.astype('int32')), or give the model a "
            "float input."
        )


def check_finite_labels(y, where="kfuse", allow_nonfinite=False):
    """Raise a ValueError naming the first rows of the labels ``y`` (an array, or a dict of
    them per output) that hold NaN / inf: a loss over them is NaN and training learns nothing.

    Example:

    ```python
    import numpy as np
    from kfuse.inputs import check_finite_labels
    check_finite_labels(np.array([0.5, 1.0]), where="fit")  # finite: no error
    ```
    """
    if allow_nonfinite or y is None:
        return
    for key, value in (y.items() if isinstance(y, dict) else [(None, y)]):
        if not is_array_like(value) or is_dataset(value):
            continue
        name = "labels y" if key is None else f"labels y[{key!r}]"
        refuse_nonfinite(as_numpy(value), where, f"{name} have", advice=(
            ": the loss over them is NaN. Drop or impute those rows (or pass allow_nonfinite=True "
            "for a loss that masks them)."))


def check_dataset_finite(dataset, names, where="kfuse", allow_nonfinite=False):
    """Check the first batch of a `tf.data.Dataset` for NaN / inf (cheap: one element)."""
    if allow_nonfinite or not hasattr(dataset, "take"):
        return  # a tf.distribute.DistributedDataset: its workers' inputs are theirs to check
    for element in dataset.take(1):
        x = element[0] if isinstance(element, tuple) else element
        if isinstance(x, dict):
            arrays = {k: as_numpy(v) for k, v in x.items()}
        elif isinstance(x, (list, tuple)):
            arrays = {n: as_numpy(v) for n, v in zip(names, x, strict=False)}
        else:
            arrays = {names[0] if len(names) == 1 else "x": as_numpy(x)}
        check_finite(arrays, where=f"{where} (first batch of the tf.data.Dataset)", what="batch rows")
        if isinstance(element, tuple) and len(element) >= 2:
            labels = element[1]
            labels = {k: as_numpy(v) for k, v in labels.items()} if isinstance(labels, dict) else as_numpy(labels)
            check_finite_labels(labels, f"{where} (first batch of the tf.data.Dataset)")
