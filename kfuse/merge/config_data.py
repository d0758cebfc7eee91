"""The ``data`` of a merge config: input rows for the data-aware methods (fisher, regmean,
adamerging, zipit), read from ``.npy`` / ``.npz`` files.

```yaml
merge_method: regmean
models:
  - {model: a.keras, data: rows_a.npy}   # each model's own task
  - {model: b.keras, data: rows_b.npz}   # .npz: the array 'x', or its only array
parameters: {alpha: 0.9}
output: merged.keras
```
A top-level ``data: rows.npy`` serves every model without its own. Paths are relative to the
YAML file's folder. A data-aware method without data, or a weight method given data, is
refused when the config is read.
"""

import os

import numpy as np

from .atomic import atomic_output, check_output
from .data_aware import DATA_METHODS

SUFFIXES = (".npy", ".npz")


def resolve_data(raw, entries, method, where, name):
    """The data files of a config, one per model (``None`` for a weight-only method).

    ``raw``: the config mapping; ``entries``: its model entries (mappings); ``where(path)``
    resolves a path against the config's folder; ``name``: the config file, for messages.
    """
    top = raw.get("data")
    own = [entry.get("data") for entry in entries]
    given = ["data"] * (top is not None) + [f"models[{i}].data" for i, d in enumerate(own)
                                            if d is not None]
    if method not in DATA_METHODS:
        if given:
            raise ValueError(
                f"{name}: {given[0]} is set but merge_method {method!r} reads weights only; "
                f"remove it (data is for {', '.join(sorted(DATA_METHODS))})")
        return None
    missing = [i for i, d in enumerate(own) if d is None]
    if top is None and missing:
        hint = ("add 'data: rows.npy' (one file for all models) or 'data:' under each model"
                if len(missing) == len(own) else "add 'data:' to it or a top-level 'data:'")
        raise ValueError(f"{name}: merge_method {method!r} learns from data but models"
                         f"[{missing[0]}] has none; {hint} (.npy or .npz input rows)")
    files = []
    for i, d in enumerate(own):
        label = f"models[{i}].data" if d is not None else "data"
        files.append(_check_file(where(d if d is not None else top), label, name))
    return files


def _check_file(path, label, name):
    if not str(path).endswith(SUFFIXES):
        raise ValueError(f"{name}: {label} {path!r} must be a .npy or .npz file of input rows")
    if not os.path.exists(path):
        raise ValueError(f"{name}: {label} file {path!r} does not exist")
    return path


def load_rows(path):
    """The input rows in ``path``: a ``.npy`` array, or a ``.npz``'s ``x`` (or only) array.

    Example:

    ```python
    import os, tempfile, numpy as np
    from kfuse.merge.config_data import load_rows
    path = os.path.join(tempfile.mkdtemp(), "rows.npz")
    np.savez(path, x=np.ones((4, 3)), y=np.zeros(4))
    print(load_rows(path).shape)  # (4, 3)
    ```
    """
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ValueError(f"data file {path!r} cannot be read as .npy/.npz ({e})") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        keys = list(loaded.keys())
        if "x" in keys or len(keys) == 1:
            return loaded["x" if "x" in keys else keys[0]]
    raise ValueError(f"data file {path!r} holds arrays {keys}; name the input rows 'x' "
                     "(np.savez(path, x=rows, ...)) or store one array")


def merge_data_to_file(config, output, overwrite=False):
    """Run the data-aware merge ``config`` (from ``load_config``) and save it to ``output``
    (never one of the inputs; an existing one only with ``overwrite``; written beside it
    and renamed into place: complete or absent)."""
    from .api import merge

    models, base = config["models"], config["base"]
    check_output(output, [("base", base)] + [(f"models[{i}]", m) for i, m in enumerate(models)]
                 + [(f"data file {f!r}", f) for f in config["data"]], overwrite=overwrite)
    files = config["data"]
    arrays = [load_rows(f) for f in files]
    try:
        model = merge(config["models"], config["method"], config["base"],
                      model_parameters=config["model_parameters"], data=arrays,
                      **config["parameters"])
    except (ValueError, TypeError) as e:
        message = str(e)
        for i in reversed(range(len(files))):  # data[10] before data[1]
            message = message.replace(f"data[{i}]", f"data file {files[i]!r}")
        raise type(e)(message) from None
    with atomic_output(output) as tmp:
        model.save(tmp)
    return output
