"""Inputs by name: a Keras model's input names and shapes (read from the public
`model.input`), and any accepted `x` as a dict of input name -> value (`named`).

Example:

```python
import numpy as np
from kfuse.inputs.names import named

named(np.zeros((3, 4)), ["signal"])["signal"].shape             # (3, 4)
list(named({"a": np.ones(2), "b": np.zeros(2), "extra": 1}, ["a", "b"]))  # ['a', 'b']
```
"""

from kfuse.inputs.values import is_array_like, is_pandas, user_value


def input_names(model):
    """The input names of a Keras model, read from the public `model.input`."""
    structure = model.input
    if isinstance(structure, dict):
        return list(structure)
    if isinstance(structure, (list, tuple)):
        return [t.name for t in structure]
    return [structure.name]


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
