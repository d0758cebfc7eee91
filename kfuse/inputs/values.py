"""One input value: what it is (a dataset, an array, pandas, strings), the forms users hold
as Keras takes them (`user_value`), numpy (`as_numpy`) and its row count (`rows`).

Example:

```python
import numpy as np
from kfuse.inputs.values import as_numpy, rows, user_value

user_value(["a b", "c"]).tolist()           # ['a b', 'c']: a list of str as a numpy array
as_numpy(np.array([b"x", b"yz"])).tolist()  # ['x', 'yz']: str objects, as Keras takes them
rows(np.zeros((3, 4)))                       # 3
```
"""

import numpy as np


def is_dataset(x):
    """Whether `x` is a `tf.data.Dataset` (without importing TensorFlow)."""
    return type(x).__module__.startswith("tensorflow") and hasattr(x, "element_spec")


def is_array_like(x):
    """An array or tensor (has shape and dtype), not a dict or a model."""
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, dict) and not hasattr(x, "predict")


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
    """One input as Keras takes it, from the forms users hold (see `kfuse.inputs`).

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
    """The row count of one value (its first axis; `len` of a list)."""
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape):
        return shape[0]
    return len(value)
