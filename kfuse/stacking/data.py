"""The training data of one `Stacker.fit`, read and checked once at its start.

`read_data` turns what the user passed (arrays, a dict, a DataFrame, a `tf.data.Dataset`,
raw strings of a KerasHub Task branch) into numpy arrays by input name, the labels and the
row weights (`kfuse.inputs.arrays_and_labels`: the one place kfuse reads inputs), checks
them against the branches and the head, and settles each input's shape. Everything after
it in the fit takes these arrays.
"""

from dataclasses import dataclass

import numpy as np

from kfuse.branches.branch import shapes_agree
from kfuse.branches.raw_inputs import tokenized_for_branches
from kfuse.inputs.checks import check_integral
from kfuse.inputs.xy import arrays_and_labels


@dataclass
class StackData:
    """The rows of one fit: `arrays` (input name -> numpy array), the labels `y`, the row
    weights `sample_weight` (or None) and `shapes` (input name -> shape without the batch
    axis, as the branches are built on)."""

    arrays: dict
    y: np.ndarray
    sample_weight: object
    shapes: dict

    @property
    def rows(self):
        """The number of rows."""
        return len(self.y)


def input_names(branches):
    """Every branch's input names, in the order of first use."""
    names = []
    for b in branches:
        names += [k for k in b.input_names if k not in names]
    return names


def read_data(branches, head, x, y, sample_weight=None, allow_nonfinite=False, where="Stacker.fit"):
    """A `StackData` from the user's `x`, `y` and `sample_weight`, checked against the
    `branches` (input names, integer inputs, declared shapes) and the `head` (labels).

    Example:

    ```python
    import keras, numpy as np, kfuse
    from kfuse.stacking.data import read_data

    base = keras.Sequential([keras.Input((4,), name="signal"), keras.layers.Dense(2, activation="softmax")])
    data = read_data([kfuse.Branch(base, name="a")], kfuse.layers.heads.Classification(2),
                     np.zeros((6, 4), "float32"), np.arange(6) % 2)
    data.shapes  # {'signal': (4,)}
    ```
    """
    declared = {k: s for b in branches for k, s in b.input_shapes.items() if s is not None}
    x = tokenized_for_branches(branches, x, where)  # hub Tasks' raw strings
    arrays, y, sample_weight = arrays_and_labels(
        x, y, input_names(branches), where, allow_nonfinite, sample_weight, shapes=declared
    )
    if y is None:
        raise ValueError(f"{where} needs labels y (or a tf.data.Dataset of (x, y) pairs)")
    for b in branches:
        check_integral(arrays, b.input_dtypes, f"{where}: branch '{b.name}'")
    try:
        head.check_labels(y)
    except ValueError as error:
        raise ValueError(f"Stacker: labels do not fit the head {head}: {error}") from None
    return StackData(arrays, y, sample_weight, data_shapes(branches, arrays))


def data_shapes(branches, arrays):
    """Input name -> the shape the branches are built on: the data's, checked against
    each branch's declared shape (one string per row is `(1,)`; a built base keeps a
    variable length it declares, as hub tokens have)."""
    shapes = {k: tuple(v.shape[1:]) for k, v in arrays.items()}
    for b in branches:
        for k in b.input_names:
            declared = b.input_shapes.get(k)
            if declared is None:
                continue
            declared = tuple(declared)
            if (
                declared == (1,) and shapes[k] == () and arrays[k].dtype.kind in "USO"
            ):  # numpy strings
                shapes[k] = (1,)  # one string per row, as kfuse.inputs hands strings to Keras
            if not shapes_agree(declared, shapes[k]):
                raise ValueError(
                    f"Branch '{b.name}': input '{k}' expects shape {declared} "
                    f"(without the batch axis) but the data has {shapes[k]}"
                )
            if None in declared and not b.is_fresh:
                shapes[k] = declared  # a built base keeps its variable length (hub tokens)
    return shapes
