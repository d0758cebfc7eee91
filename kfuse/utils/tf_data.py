"""A `tf.data.Dataset` read into numpy: the one place kfuse reads a user's dataset into
memory (`kfuse.inputs.arrays_and_labels`, `FusedModel.fit_head`, `kfuse.compare`).

It imports nothing of kfuse (nor TensorFlow: the dataset brings its own), so it sits on
the lowest floor; `kfuse.inputs` re-exports `read_dataset` and checks what it returns.

Example:

```python
import numpy as np, tensorflow as tf
from kfuse.utils.tf_data import read_dataset

data = tf.data.Dataset.from_tensor_slices((np.zeros((5, 2)), np.arange(5))).batch(2)
x, y, weights = read_dataset(data)
x.shape, y.tolist(), weights  # (5, 2), [0, 1, 2, 3, 4], None
```
"""

import numpy as np


def read_dataset(dataset, where="kfuse", need_labels=True):
    """A `tf.data.Dataset` of x, (x, y) or (x, y, sample_weight), batched or not, as numpy.

    Returns (x, y, sample_weight); y and sample_weight are None where the dataset has none.
    """
    spec = dataset.element_spec
    pairs = isinstance(spec, tuple) and len(spec) >= 2
    if need_labels and not pairs:
        raise ValueError(f"{where}: a tf.data.Dataset must yield (x, y) pairs; received elements {spec}")
    first = spec[0] if pairs else spec
    probe = next(iter(first.values())) if isinstance(first, dict) else (first[0] if isinstance(first, (list, tuple)) else first)
    batched = len(probe.shape) > 0 and probe.shape[0] is None
    parts = []
    for element in dataset.as_numpy_iterator():
        parts.append(element if pairs else (element,))
    if not parts:
        raise ValueError(f"{where}: the tf.data.Dataset is empty (no elements)")
    join = np.concatenate if batched else np.stack
    width = len(parts[0])
    x = _gather(parts, 0, join)
    y = _gather(parts, 1, join) if width > 1 else None
    weights = _gather(parts, 2, join) if width > 2 else None
    return x, y, weights


def _gather(parts, index, join):
    """Part `index` (x, y or the weights) of every element, joined into one array (or a
    dict / tuple of arrays, as the elements hold them)."""
    values = [p[index] for p in parts]
    if isinstance(values[0], dict):
        return {k: join([v[k] for v in values]) for k in values[0]}
    if isinstance(values[0], (list, tuple)):
        return tuple(join([v[i] for v in values]) for i in range(len(values[0])))
    return join(values)
