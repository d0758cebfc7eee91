"""The one place kfuse normalises user inputs: names, structure, rows and finiteness.

Every entry point (`FusedModel.fit` / `predict` / `fit_head`, `kfuse.Stacker`, cached
tuner trials, `kfuse.compare`, every ensemble's `fit`) goes through these functions, so one input is accepted and
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
  declared `(1,)` or `()` takes a flat `(n,)` array or a `(n, 1)` column;
- an ensemble (`kfuse.ensemble`), which does not read its members' input names, checks
  x and y once with `checked_xy`: x stays one array or a dict, as given, made numpy.

The modules, one job each: `values` (one value: its kind, numpy, rows), `names` (inputs
by name), `checks` (rows, finiteness, integer ids), `selection` (rows and structure for a
model) and `xy` (x and y checked together at the start of a fit).

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

from kfuse.inputs.checks import (
    INPUT_ADVICE,
    SHOW_ROWS,
    check_dataset_finite,
    check_finite,
    check_finite_labels,
    check_integral,
    check_rows,
    nonfinite_rows,
    refuse_nonfinite,
)
from kfuse.inputs.names import from_frame, input_names, input_shapes, keras_list, named
from kfuse.inputs.selection import feed, row_count, take
from kfuse.inputs.values import (
    as_numpy,
    is_array_like,
    is_dataset,
    is_pandas,
    is_strings,
    rows,
    user_value,
)
from kfuse.inputs.xy import MEMBER_ADVICE, arrays_and_labels, checked_xy
from kfuse.utils.tf_data import read_dataset  # also kfuse.inputs.read_dataset, as before

__all__ = [
    "INPUT_ADVICE", "MEMBER_ADVICE", "SHOW_ROWS", "arrays_and_labels", "as_numpy", "check_dataset_finite",
    "check_finite", "check_finite_labels", "check_integral", "check_rows", "checked_xy", "feed", "from_frame",
    "input_names", "input_shapes", "is_array_like", "is_dataset", "is_pandas", "is_strings", "keras_list",
    "named", "nonfinite_rows", "read_dataset", "refuse_nonfinite", "row_count", "rows", "take", "user_value",
]  # fmt: skip
