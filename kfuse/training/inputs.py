"""Stacker data in: arrays, dicts of arrays or a `tf.data.Dataset`, as numpy per input."""

import hashlib

import numpy as np


def _is_dataset(x):
    return type(x).__module__.startswith("tensorflow") and hasattr(x, "element_spec")


def _materialize(dataset):
    """Read a `tf.data.Dataset` of (x, y) pairs, batched or not, into numpy."""
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) < 2:
        raise ValueError(
            f"Stacker.fit: a tf.data.Dataset must yield (x, y) pairs; received elements {spec}"
        )
    y_spec = spec[1]
    batched = len(y_spec.shape) > 0 and y_spec.shape[0] is None
    xs, ys = [], []
    for features, labels, *_ in dataset.as_numpy_iterator():
        xs.append(features)
        ys.append(labels)
    if not ys:
        raise ValueError("Stacker.fit: the tf.data.Dataset is empty")
    join = np.concatenate if batched else np.stack
    y = join(ys)
    if isinstance(xs[0], dict):
        x = {key: join([b[key] for b in xs]) for key in xs[0]}
    else:
        x = join(xs)
    return x, y


def as_arrays(x, y, input_names, where="Stacker.fit"):
    """Return ({input name: array}, y as array or None), checked for names and lengths."""
    if _is_dataset(x):
        if y is not None:
            raise ValueError(f"{where}: pass y inside the tf.data.Dataset, not as y=")
        x, y = _materialize(x)
    if isinstance(x, dict):
        missing = [k for k in input_names if k not in x]
        if missing:
            raise ValueError(
                f"{where}: the branches read inputs {input_names}; the data lacks {missing} "
                f"(received keys {sorted(x)})"
            )
        arrays = {k: _array(x[k]) for k in input_names}
    else:
        if len(input_names) != 1:
            raise ValueError(
                f"{where}: the branches read several inputs {input_names}; pass x as a dict "
                "of input name -> array"
            )
        arrays = {input_names[0]: _array(x)}
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{where}: inputs have different numbers of rows: {lengths}")
    n = next(iter(lengths.values()))
    if y is not None:
        y = np.asarray(y)
        if len(y) != n:
            raise ValueError(
                f"{where}: x has {n} rows ({lengths}) but y has {len(y)}; they must match"
            )
    if n == 0:
        raise ValueError(f"{where}: x has no rows")
    return arrays, y


def _array(values):
    """numpy; strings (numpy str/bytes, TF string tensors) as object arrays of str, the
    string arrays Keras's `fit`/`predict` take."""
    array = np.asarray(values)
    if array.dtype.kind not in "USO":
        return array
    decode = np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])
    return decode(array) if array.size else array.astype(object)


def take(arrays, rows):
    """The rows `rows` (None: all) of every input."""
    if rows is None:
        return arrays
    return {k: v[rows] for k, v in arrays.items()}


def feed(model, input_names, arrays, rows=None):
    """Data for `model` (a base reading `input_names` in order) from the named arrays."""
    values = [arrays[k] if rows is None else arrays[k][rows] for k in input_names]
    structure = getattr(model, "_inputs_struct", None)
    if isinstance(structure, dict):
        if set(structure) == set(input_names):
            return dict(zip(input_names, values, strict=True))
        return dict(zip(structure, values, strict=True))
    return values[0] if len(values) == 1 else values


def data_digest(arrays, y=None):
    """A short content hash of named arrays (and labels): the key of caches and runs."""
    digest = hashlib.sha1()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}{a.shape}{a.dtype}".encode())
        if a.dtype == object:  # strings: their text, not the addresses of the objects
            for item in a.reshape(-1):
                text = item if isinstance(item, bytes) else str(item).encode()
                digest.update(len(text).to_bytes(8, "little") + text)
        else:
            digest.update(a.tobytes())
    if y is not None:
        y = np.ascontiguousarray(y)
        digest.update(f"y{y.shape}{y.dtype}".encode())
        digest.update(y.tobytes())
    return digest.hexdigest()[:16]
