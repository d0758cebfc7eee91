"""`jsonable`: a JSON-ready copy of a settings value, for configuration fingerprints.

One function for every fingerprint kfuse writes (the Stacker's `work_dir`, the ensembles'
`run.json`), so two processes given the same settings write the same text: numbers,
strings, booleans and None as they are; lists and tuples as lists; dict keys as strings;
numpy scalars as Python numbers; an optimizer as its class and config; a callback as its
class name. Anything else goes to `leaf` (default: its class name), never to a `repr`
that holds a memory address.
"""

import keras
import numpy as np


def type_name(value):
    return type(value).__name__


def jsonable(value, leaf=type_name):
    """`value` as nested lists / dicts of JSON scalars; `leaf(value)` for anything else.

    Example:

    ```python
    import numpy as np
    from kfuse.utils.jsonable import jsonable

    jsonable({"epochs": np.int64(3), "shape": (2, 4), 1: None})  # {'epochs': 3, 'shape': [2, 4], '1': None}
    ```
    """
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v, leaf) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v, leaf) for k, v in value.items()}
    if isinstance(value, keras.optimizers.Optimizer):
        return {"optimizer": type(value).__name__, "config": jsonable(value.get_config(), leaf)}
    if isinstance(value, keras.callbacks.Callback):
        return type(value).__name__
    if isinstance(value, np.generic):
        return value.item()
    return leaf(value)
