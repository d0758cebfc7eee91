"""What a run depends on, as short hashes: a network's structure and the data's content.

One fingerprint for every kfuse `work_dir` (the Stacker's `training/fingerprint.py` and
the ensembles' `ensemble/base.py` build their `run.json` from these) and for the branch
cache: a network is identified by the structure it builds (every layer's class, config
and weight shapes, nested models unrolled, auto-generated names left out), never by the
name of the function that builds it, so `Dense(4)` changed to `Dense(16)` is seen.

Example:

```python
import keras, numpy as np
from kfuse.utils.fingerprints import data_digest, structure_hash

net = lambda width: keras.Sequential([keras.Input((3,)), keras.layers.Dense(width)])
structure_hash(net(4)) == structure_hash(net(4)), structure_hash(net(4)) == structure_hash(net(16))  # True, False
data_digest({"x": np.zeros((2, 3))}, np.array([0, 1]))  # a 16-character hex digest
```
"""

import hashlib
import json

import keras
import numpy as np

from kfuse.utils.jsonable import jsonable


def text_hash(text):
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def structure(model):
    """Every layer's class, config and weight shapes, nested models unrolled, without the
    auto-generated names (`dense_3` in one process is `dense_7` in the next)."""
    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layers.append([type(layer).__name__, structure(layer)])
            continue
        config = {k: v for k, v in layer.get_config().items() if k != "name"}
        shapes = [list(w.shape) for w in layer.weights]
        layers.append([type(layer).__name__, jsonable(config), shapes])
    return layers


def structure_hash(model):
    """A short hash of `structure(model)`."""
    return text_hash(json.dumps(structure(model), sort_keys=True))


def compiled_hash(model):
    """`structure_hash` plus the compile settings a model carries (optimizer class and
    config without its auto-generated name, loss), which change what training gives."""
    optimizer = getattr(model, "optimizer", None)
    settings = None
    if optimizer is not None:
        config = {k: v for k, v in optimizer.get_config().items() if k != "name"}
        settings = [type(optimizer).__name__, jsonable(config), jsonable(getattr(model, "loss", None),
                                                                         leaf=_callable_name)]
    return text_hash(json.dumps([structure(model), settings], sort_keys=True))


def _callable_name(value):
    if hasattr(value, "get_config"):
        return [type(value).__name__, jsonable(value.get_config())]
    return getattr(value, "__qualname__", type(value).__name__)


def _update(digest, name, array):
    a = np.ascontiguousarray(array)
    digest.update(f"{name}{a.shape}{a.dtype}".encode())
    if a.dtype == object:  # strings: their text, not the addresses of the objects
        for item in a.reshape(-1):
            text = item if isinstance(item, bytes) else str(item).encode()
            digest.update(len(text).to_bytes(8, "little") + text)
    else:
        digest.update(a.tobytes())


def data_digest(arrays, y=None):
    """A short content hash of named arrays (and labels): the key of caches and runs."""
    digest = hashlib.sha1()
    for key in sorted(arrays):
        _update(digest, key, arrays[key])
    if y is not None:
        _update(digest, "y", y)
    return digest.hexdigest()[:16]
