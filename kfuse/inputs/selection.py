"""Rows and structure for a model: the named arrays in the form a model's `input` takes
(`feed`), some rows of them (`take`) and their row count (`row_count`).
"""

from kfuse.inputs.checks import check_rows


def feed(model, input_names, arrays, rows=None):
    """Data for `model` (a base reading `input_names` in order) from the named arrays.

    The model's own input structure (`model.input`: a dict, a list or one tensor) decides
    the form: a dict keyed by its input names, a list, or a single array.
    """
    values = [arrays[k] if rows is None else arrays[k][rows] for k in input_names]
    try:
        structure = model.input
    except AttributeError:  # a Sequential rebuilt from its config, not yet called: plain arrays
        structure = None
    if isinstance(structure, dict):
        if set(structure) == set(input_names):
            return {k: arrays[k] if rows is None else arrays[k][rows] for k in structure}
        return dict(zip(structure, values, strict=True))
    return values[0] if len(values) == 1 else values


def take(x, rows=None):
    """The rows `rows` (None: all) of an array, or of every array of a dict.

    Example:

    ```python
    import numpy as np
    from kfuse.inputs import take

    take({"a": np.arange(6).reshape(3, 2), "b": np.arange(3)}, [0, 2])["b"].tolist()  # [0, 2]
    take(np.arange(4), slice(1, 3)).tolist()  # [1, 2]
    ```
    """
    if rows is None:
        return x
    if isinstance(x, dict):
        return {k: v[rows] for k, v in x.items()}
    return x[rows]


def row_count(x, where="kfuse"):
    """The rows of an array or of a dict of arrays (which must agree: `check_rows`).

    Example:

    ```python
    import numpy as np
    from kfuse.inputs import row_count

    row_count({"a": np.zeros((3, 2)), "b": np.zeros(3)})  # 3
    ```
    """
    return check_rows(x if isinstance(x, dict) else {"x": x}, where=where)
