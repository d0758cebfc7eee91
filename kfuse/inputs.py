"""The one place kfuse normalises user inputs: names, structure, rows and finiteness.

Every entry point (`FusedModel.fit` / `predict` / `fit_head`, `kfuse.Stacker`, cached
tuner trials, `kfuse.compare`) goes through these functions, so one input is accepted and
refused the same way everywhere:

- names come from the model itself (`model.input`, a dict keyed by input name for a
  kfuse stack), never from a private attribute;
- `x` may be a dict of name -> array, a single array (a model with one input), a tuple
  or list (one array per input, in the model's input order) or a `tf.data.Dataset` of
  `(x, y)` or `(x, y, sample_weight)` elements, batched or not;
- every input must have the same number of rows as the others and as `y`; the error
  names each input and its row count;
- numeric numpy inputs are checked for NaN and infinity (and a `tf.data` input's first
  batch): the error names the input and the first bad rows. `allow_nonfinite=True`
  switches the check off (a model with a NaN-aware first layer, say);
- the forms users hold are taken as they are (`user_value`): a pandas DataFrame (a
  one-input model takes it as one 2-D array; a multi-input model takes one column per
  input, by input name), a pandas Series, a list (of str, say) and strings as numpy
  `str` / `bytes` / `object` arrays or `tf.string` tensors, which become the object
  arrays of `str` Keras takes; strings are never cast to numbers. A string input
  declared `(1,)` or `()` takes a flat `(n,)` array or a `(n, 1)` column.

Example:

```python
import numpy as np
from kfuse.inputs import named, check_finite

arrays = named(np.zeros((3, 4)), ["signal"])          # {"signal": array (3, 4)}
named({"a": np.ones(2), "b": np.zeros(2), "extra": 1}, ["a", "b"]).keys()  # a, b
try:
    check_finite({"signal": np.array([[0.0], [np.nan]])}, where="fit")
except ValueError as error:
    print(error)  # fit: input 'signal' has NaN or infinite values in rows [1] ...
```
"""

import numpy as np

from kfuse.utils.tf_data import read_dataset  # also kfuse.inputs.read_dataset, as before

#: how many bad row indices an error lists
SHOW_ROWS = 5


def is_dataset(x):
    """Whether `x` is a `tf.data.Dataset` (without importing TensorFlow)."""
    return type(x).__module__.startswith("tensorflow") and hasattr(x, "element_spec")


def is_array_like(x):
    """An array or tensor (has shape and dtype), not a dict or a model."""
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, dict) and not hasattr(x, "predict")


def input_names(model):
    """The input names of a Keras model, read from the public `model.input`."""
    structure = model.input
    if isinstance(structure, dict):
        return list(structure)
    if isinstance(structure, (list, tuple)):
        return [t.name for t in structure]
    return [structure.name]


def is_pandas(x):
    """Whether `x` is a pandas DataFrame or Series (without importing pandas)."""
    return type(x).__module__.startswith("pandas") and hasattr(x, "to_numpy")


def is_strings(value):
    """Whether `value` holds strings: a numpy str / bytes / object array or a tf.string tensor."""
    dtype = getattr(value, "dtype", None)
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "USO"
    return dtype is not None and getattr(dtype, "name", str(dtype)) == "string"


def user_value(value, shape=None):
    """One input as Keras takes it, from the forms users hold (see the module docstring).

    `shape` (the input's shape without the batch axis, if known): a `(n, 1)` column of
    strings for a `(1,)` or `()` input becomes `(n,)`, one string per row, which Keras
    takes for both (it refuses 2-D object arrays).
    Numbers stay what they are (a tensor stays a tensor).
    """
    if is_pandas(value):
        value = value.to_numpy()
    elif isinstance(value, list):
        value = np.asarray(value) if value and not isinstance(value[0], (list, np.ndarray)) else np.asarray(value, object)
    concrete = isinstance(value, np.ndarray) or type(value).__name__ == "EagerTensor"
    if not concrete or not is_strings(value):
        return value  # numbers, and symbolic tensors inside a traced call, as they are
    value = as_numpy(value)
    if shape is not None and tuple(shape) in ((), (1,)) and value.ndim == 2 and value.shape[-1] == 1:
        return value[:, 0]  # one string per row: Keras takes (n,) for both, refuses (n, 1) objects
    return value


def input_shapes(model):
    """{input name: shape without the batch axis} from the public `model.input`."""
    structure = model.input
    tensors = list(structure.values()) if isinstance(structure, dict) else keras_list(structure)
    return {name: tuple(t.shape[1:]) for name, t in zip(input_names(model), tensors, strict=True)}


def keras_list(structure):
    return list(structure) if isinstance(structure, (list, tuple)) else [structure]


def from_frame(frame, names, owner):
    """A pandas DataFrame as named inputs: the whole frame for one input, else one column
    per input name."""
    if len(names) == 1:
        return {names[0]: frame.to_numpy()}
    columns = [str(c) for c in frame.columns]
    missing = [n for n in names if n not in columns]
    if missing:
        raise ValueError(
            f"{owner} reads several inputs {list(names)}; received a DataFrame with columns "
            f"{columns[:10]}{' ...' if len(columns) > 10 else ''}, lacking {missing}. Name one "
            "column per input after it, or pass a dict of input name -> array, e.g. "
            f"{{{names[0]!r}: frame[[...]].to_numpy(), ...}}."
        )
    return {n: frame[[n]].to_numpy() for n in names}  # (n, 1) per input


def named(x, names, where="kfuse", model_name=None, shapes=None):
    """`x` as a dict of input name -> value, checked against `names`.

    Accepts a dict (extra keys are dropped), a single array for one input, a tuple / list
    of one array per input in the order of `names`, or a pandas DataFrame (see
    `from_frame`). Each value goes through `user_value` (`shapes`: name -> input shape).
    """
    owner = f"Model '{model_name}'" if model_name else where
    shapes = shapes or {}
    found = _named(x, names, owner)
    return {n: user_value(v, shapes.get(n)) for n, v in found.items()}


def _is_column(v):
    """One input's values inside a list / tuple of inputs (not a scalar: a str, a number)."""
    return (is_array_like(v) and len(v.shape) > 0) or isinstance(v, list) or is_pandas(v)


def _named(x, names, owner):
    if is_pandas(x) and x.ndim == 2:
        return from_frame(x, names, owner)
    if isinstance(x, dict):
        missing = [n for n in names if n not in x]
        if missing:
            raise ValueError(
                f"{owner} reads inputs {list(names)}; the data lacks {missing} "
                f"(received keys {sorted(map(str, x))}). Pass a dict keyed by input name."
            )
        return {n: x[n] for n in names}
    if isinstance(x, (list, tuple)) and x and all(_is_column(v) for v in x):
        if len(names) == 1 and not all(is_array_like(v) for v in x):
            return {names[0]: x}
        if len(x) != len(names):
            raise ValueError(
                f"{owner} reads {len(names)} input(s) {list(names)}; received a "
                f"{type(x).__name__} of {len(x)} arrays. Pass one array per input, or a dict."
            )
        return dict(zip(names, x, strict=True))
    if len(names) == 1 and (is_array_like(x) or isinstance(x, list)):
        return {names[0]: x}
    if len(names) > 1 and is_array_like(x):
        raise ValueError(
            f"{owner} reads several inputs {list(names)}; received one array of shape "
            f"{tuple(x.shape)}: pass x as a dict of input name -> array."
        )
    raise TypeError(
        f"{owner}: inputs must be a dict of name -> array, an array, a list, a tuple of arrays, "
        f"a pandas DataFrame or a tf.data.Dataset; received {type(x).__name__}"
    )


def as_numpy(value):
    """A numpy array of `value`; strings stay strings, as the object arrays of `str` that
    Keras's `fit` / `predict` take (numpy `str` / `bytes` arrays and `tf.string` tensors
    are converted: Keras refuses numpy's fixed-width string dtypes)."""
    if isinstance(value, np.ndarray):
        array = value
    elif hasattr(value, "numpy") and callable(value.numpy):
        array = np.asarray(value.numpy())
    else:
        array = np.asarray(value)
    if array.dtype.kind not in "USO":
        return array
    if array.dtype.kind == "O" and not any(isinstance(v, bytes) for v in array.flat):
        return array
    decode = np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])
    return decode(array) if array.size else array.astype(object)


def rows(value):
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape):
        return shape[0]
    return len(value)


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


def check_finite(arrays, where="kfuse", allow_nonfinite=False, what="rows"):
    """Raise a ValueError naming the first input with NaN / inf and its first bad rows."""
    if allow_nonfinite:
        return
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray):
            continue
        bad = nonfinite_rows(value)
        if bad.size:
            shown = bad[:SHOW_ROWS].tolist()
            more = f" and {bad.size - SHOW_ROWS} more" if bad.size > SHOW_ROWS else ""
            raise ValueError(
                f"{where}: input '{key}' has NaN or infinite values in {what} {shown}{more} "
                f"({bad.size} of {len(value)}). Clean or impute them, or pass "
                "allow_nonfinite=True if the model handles them."
            )


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
        bad = nonfinite_rows(as_numpy(value))
        if bad.size:
            shown = bad[:SHOW_ROWS].tolist()
            more = f" and {bad.size - SHOW_ROWS} more" if bad.size > SHOW_ROWS else ""
            name = "labels y" if key is None else f"labels y[{key!r}]"
            raise ValueError(
                f"{where}: {name} have NaN or infinite values in rows {shown}{more} "
                f"({bad.size} of {rows(value)}): the loss over them is NaN. Drop or impute "
                "those rows (or pass allow_nonfinite=True for a loss that masks them)."
            )


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


def take(arrays, rows=None):
    """The rows `rows` (None: all) of every input."""
    if rows is None:
        return arrays
    return {k: v[rows] for k, v in arrays.items()}
