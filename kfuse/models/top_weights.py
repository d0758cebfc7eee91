"""Weights files of `model.top` alone: `FusedModel.save_top_weights` writes them (marked
with `TOP_WEIGHTS_MARK`), `FusedModel.load_weights` recognises them and reads them into
the top.

Example:

```python
import keras, kfuse
from kfuse.models.top_weights import is_top_weights, save_top_weights

base = keras.Sequential([keras.Input((3,), name="x"), keras.layers.Dense(2)])
model = kfuse.stack([kfuse.Branch(base, name="b", trainable=False, output="logits")], head=2)
save_top_weights(model.top, "top.weights.h5")
is_top_weights("top.weights.h5")  # True
```
"""

import os

import keras

#: the attribute that marks a weights file of `save_top_weights` (the top alone)
TOP_WEIGHTS_MARK = "kfuse_top_weights"


def save_top_weights(top, filepath, overwrite=True):
    """Write the layer weights of `top` (a `model.top`) alone, as a marked `.weights.h5`
    file (no optimizer state)."""
    import h5py

    path = str(filepath)
    if not path.endswith(".weights.h5"):
        raise ValueError(f"save_top_weights writes a '.weights.h5' file; received {path!r}")
    plain = keras.Model(top.inputs, top.outputs, name=top.name)  # the layers, no optimizer
    plain.save_weights(path, overwrite=overwrite)
    with h5py.File(path, "a") as f:
        f.attrs[TOP_WEIGHTS_MARK] = top.name


def is_top_weights(filepath):
    """Whether `filepath` is a `.weights.h5` file that `save_top_weights` wrote."""
    path = str(filepath)
    if not path.endswith(".weights.h5") or not os.path.isfile(path):
        return False
    import h5py

    with h5py.File(path, "r") as f:
        return TOP_WEIGHTS_MARK in f.attrs
