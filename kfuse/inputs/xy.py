"""x and y checked together, once, at the start of a fit: for a model, by its input names
(`arrays_and_labels`); for an ensemble, whose members' input names it does not read
(`checked_xy`). Rows must agree, numbers must be finite; a `tf.data.Dataset` is read into
memory, y from it.
"""

import numpy as np

from kfuse.inputs.checks import check_finite, check_finite_labels, check_rows, refuse_nonfinite
from kfuse.inputs.names import named
from kfuse.inputs.values import as_numpy, is_array_like, is_dataset, rows, user_value
from kfuse.utils.tf_data import read_dataset

#: what to do about non-finite data an ensemble is given
MEMBER_ADVICE = "; every member trained on them would be NaN. Clean or impute them, or drop those rows."


def arrays_and_labels(
    x, y, names, where="kfuse", allow_nonfinite=False, sample_weight=None, model_name=None, shapes=None
):
    """({input name: numpy array}, y, sample_weight) from any accepted `x`, fully checked.

    A `tf.data.Dataset` is read into memory (then y must come from it, not from `y=`).
    Rows must agree across the inputs, y and sample_weight; numeric inputs must be finite
    unless `allow_nonfinite`.
    """
    if is_dataset(x):
        if y is not None:
            raise ValueError(f"{where}: pass y inside the tf.data.Dataset, not as y=")
        x, y, data_weights = read_dataset(x, where)
        sample_weight = data_weights if sample_weight is None else sample_weight
    arrays = {k: as_numpy(v) for k, v in named(x, names, where, model_name, shapes).items()}
    n = check_rows(arrays, y, where)
    if n == 0:
        raise ValueError(f"{where}: x has no rows")
    y = None if y is None else as_numpy(y)
    if sample_weight is not None:
        sample_weight = as_numpy(sample_weight)
        if rows(sample_weight) != n:
            raise ValueError(f"{where}: x has {n} rows but sample_weight has {rows(sample_weight)}")
    check_finite(arrays, where, allow_nonfinite)
    check_finite_labels(y, where, allow_nonfinite)
    return arrays, y, sample_weight


def checked_xy(x, y, where="kfuse"):
    """(x, y) of an ensemble's fit as numpy, checked: x an array, or a dict of input name ->
    array (as given: the members read it), y one label (or target row) per row of x.

    x may take the forms `user_value` takes (arrays, DataFrames, Series, lists of str,
    tensors), or be a `tf.data.Dataset` of (x, y) elements (then y comes from it). Numbers
    in x and y must be finite: one NaN row makes every member that trains on it NaN. Each
    error begins with `where` (`"BaggingClassifier.fit"`, say).

    Example:

    ```python
    import numpy as np
    from kfuse.inputs import checked_xy

    x, y = checked_xy({"a": [[0.0], [1.0]], "b": np.ones(2)}, [0, 1], where="BaggingClassifier.fit")
    x["a"].shape, y.tolist()  # (2, 1), [0, 1]
    try:
        checked_xy(np.zeros((3, 2)), [0, 1], where="BaggingClassifier.fit")
    except ValueError as error:
        print(error)  # BaggingClassifier.fit: x has 3 rows ('x': 3) but y has 2; they must match
    ```
    """
    if is_dataset(x):
        x, y = _dataset_xy(x, y, where)
    if x is None or y is None:
        raise ValueError(f"{where} needs x and y; received x={type(x).__name__}, y={type(y).__name__}")
    if isinstance(x, tuple) or (isinstance(x, list) and x and is_array_like(x[0]) and len(x[0].shape)):
        raise ValueError(f"{where}: x is a {type(x).__name__} of {len(x)} arrays; pass one array, or several "
                         "inputs as a dict of input name -> array (the members' input names)")
    x = {k: as_numpy(user_value(v)) for k, v in x.items()} if isinstance(x, dict) else as_numpy(user_value(x))
    y = np.asarray(y)
    arrays = x if isinstance(x, dict) else {"x": x}
    if check_rows(arrays, y, where) == 0:
        raise ValueError(f"{where}: x has no rows")
    check_finite(arrays, where, advice=MEMBER_ADVICE)
    refuse_nonfinite(y, where, "the targets y has", advice=MEMBER_ADVICE)
    return x, y


def _dataset_xy(dataset, y, where):
    """(x, y) of a `tf.data.Dataset` of (x, y) elements, read into memory."""
    if y is not None:
        raise ValueError(f"{where}: pass y inside the tf.data.Dataset, not as y=")
    x, y, weights = read_dataset(dataset, where)
    if weights is not None:
        raise ValueError(f"{where}: the tf.data.Dataset yields (x, y, sample_weight); an ensemble weights the "
                         "rows itself (samples, boosting weights): give (x, y) elements")
    return x, y
