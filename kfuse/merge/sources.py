"""Where a merge reads its weights from: an in-memory ``keras.Model`` or a ``.keras`` file.

A ``.keras`` file is read one tensor at a time from its ``model.weights.h5`` with h5py,
straight out of the (uncompressed) zip archive, so merging N files holds one model (the
output) plus one tensor per input in memory.
"""

import io
import json
import os
import struct
import tempfile
import zipfile

import h5py
import keras
import numpy as np

from .checks import WeightSpec

WEIGHTS = "model.weights.h5"


class _Window(io.RawIOBase):
    """A read-only, seekable view of ``size`` bytes at ``offset`` of a file."""

    def __init__(self, path, offset, size):
        self._f = open(path, "rb")
        self._offset, self._size, self._pos = offset, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, pos, whence=0):
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = base + pos
        return self._pos

    def readinto(self, buffer):
        n = max(0, min(len(buffer), self._size - self._pos))
        self._f.seek(self._offset + self._pos)
        data = self._f.read(n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self):
        self._f.close()
        super().close()


def _lambda_layers(config, found):
    if isinstance(config, dict):
        if config.get("class_name") == "Lambda":
            found.append(config.get("config", {}).get("name", "?"))
        for v in config.values():
            _lambda_layers(v, found)
    elif isinstance(config, list):
        for v in config:
            _lambda_layers(v, found)
    return found


def check_keras_file(path, name):
    """Raise a clear error unless ``path`` is a readable ``.keras`` file safe to load.

    Example:

    ```python
    import os, tempfile, keras
    from kfuse.merge.sources import check_keras_file
    path = os.path.join(tempfile.mkdtemp(), "m.keras")
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(path)
    check_keras_file(path, "models[0]")
    ```
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name}: model file {path!r} does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{name}: {path!r} is not a .keras file (a zip archive)")
    with zipfile.ZipFile(path) as z:
        if WEIGHTS not in z.namelist() or "config.json" not in z.namelist():
            raise ValueError(f"{name}: {path!r} has no {WEIGHTS} / config.json; save it with "
                             "model.save('name.keras')")
        config = json.loads(z.read("config.json"))
    lambdas = _lambda_layers(config, [])
    if lambdas:
        raise ValueError(
            f"{name}: {path!r} holds Lambda layer {lambdas[0]!r}, refused under safe_mode=True "
            "(it would run arbitrary code). Rebuild the model without Lambda layers, or load it "
            "yourself with keras.saving.load_model(path, safe_mode=False) and pass the model."
        )


def load_keras_file(path, name):
    """``keras.saving.load_model(path, compile=False, safe_mode=True)`` with clear errors.

    Example:

    ```python
    import os, tempfile, keras
    from kfuse.merge.sources import load_keras_file
    path = os.path.join(tempfile.mkdtemp(), "m.keras")
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(path)
    print(load_keras_file(path, "models[0]").count_params())
    ```
    """
    check_keras_file(path, name)
    return keras.saving.load_model(path, compile=False, safe_mode=True)


def build_from_file(path, name):
    """The model a ``.keras`` file describes, built from its config (``safe_mode=True``),
    with fresh weights: the file's weights are not read.

    Example:

    ```python
    import os, tempfile, keras
    from kfuse.merge.sources import build_from_file
    path = os.path.join(tempfile.mkdtemp(), "m.keras")
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(path)
    print(build_from_file(path, "models[0]").count_params())  # 3
    ```
    """
    check_keras_file(path, name)
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
    config.pop("compile_config", None)
    return keras.saving.deserialize_keras_object(config, safe_mode=True)


def _open_h5(path):
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(WEIGHTS)
    if info.compress_type != zipfile.ZIP_STORED:
        with zipfile.ZipFile(path) as z:
            return h5py.File(io.BytesIO(z.read(WEIGHTS)), "r"), None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    start = info.header_offset + 30 + name_len + extra_len
    window = _Window(path, start, info.file_size)
    return h5py.File(window, "r"), window


def h5_layout(h5):
    """``{(layer path, i): dataset path}`` from the ``name`` attributes Keras writes.

    Example:

    ```python
    import os, tempfile, h5py, keras
    from kfuse.merge.sources import h5_layout
    path = os.path.join(tempfile.mkdtemp(), "m.weights.h5")
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="out")]).save_weights(path)
    with h5py.File(path) as f:
        print(h5_layout(f))  # {('out', 0): 'layers/dense/vars/0', ('out', 1): ...}
    ```
    """
    layout = {}

    def visit(name, obj):
        parts = name.split("/")
        if not isinstance(obj, h5py.Dataset) or len(parts) < 3 or parts[-2] != "vars":
            return
        if parts[0] != "layers":
            return  # the optimizer and the model's own vars
        names = []
        for k in range(1, len(parts) - 2):
            group = h5.get("/".join(parts[: k + 1]) + "/vars")
            if group is not None and "name" in group.attrs and parts[k] != "layers":
                names.append(str(group.attrs["name"]))
        layout[("/".join(names), int(parts[-1]))] = name

    h5.visititems(visit)
    return layout


def reference_layout(skeleton, path=None):
    """Dataset path in ``model.weights.h5`` of each of ``skeleton.weights``, in order.

    Example:

    ```python
    import keras
    from kfuse.merge.sources import reference_layout
    m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    print(reference_layout(m))
    ```
    """
    if path is None:
        with tempfile.TemporaryDirectory() as tmp:
            file = os.path.join(tmp, "ref.weights.h5")
            skeleton.save_weights(file)
            with h5py.File(file, "r") as h5:
                layout = h5_layout(h5)
    else:
        h5, window = _open_h5(path)
        with h5:
            layout = h5_layout(h5)
        if window is not None:
            window.close()
    where = {}

    def walk(layer, chain):
        for i, w in enumerate(layer.weights):
            where[id(w)] = ("/".join(chain), i)
        if isinstance(layer, keras.Model):
            for sub in layer.layers:
                walk(sub, chain + [sub.name])

    walk(skeleton, [])
    return [layout.get(where.get(id(w))) for w in skeleton.weights]


class ModelSource:
    """Weights of an in-memory model, by position in ``model.weights``."""

    def __init__(self, model, name):
        from .checks import weight_specs

        self.model, self.name = model, name
        self.specs = weight_specs(model)

    def check(self, reference, reference_name):
        from .checks import check_same

        check_same(reference, self.specs, self.name, reference_name)

    def read(self, i):
        return np.asarray(keras.ops.convert_to_numpy(self.model.weights[i]))

    def close(self):
        pass


class FileSource:
    """Weights of a ``.keras`` file, one dataset at a time (``layout``: dataset per weight)."""

    def __init__(self, path, name, layout):
        check_keras_file(path, name)
        self.path, self.name, self.layout = path, name, layout
        self.h5, self._window = _open_h5(path)

    def check(self, reference, reference_name):
        from .checks import check_same

        specs = []
        for ref, dataset in zip(reference, self.layout, strict=False):
            if dataset is None or dataset not in self.h5:
                if ref.kind == "nonfloat":
                    specs.append(ref)
                    continue
                raise ValueError(
                    f"{self.name} ({self.path!r}) differs from {reference_name} at layer "
                    f"{ref.layer!r} weight {ref.path!r}: no such weight (layer class or "
                    "count differ). Merge models of one architecture."
                )
            d = self.h5[dataset]
            specs.append(WeightSpec(ref.index, ref.path, ref.layer, None, tuple(d.shape),
                                    np.dtype(d.dtype).name, ref.kind, ref.depth))
        check_same(reference, specs, f"{self.name} ({self.path!r})", reference_name)
        total = len(h5_layout(self.h5))
        if total != sum(1 for d in self.layout if d is not None and d in self.h5):
            raise ValueError(
                f"{self.name} ({self.path!r}) has {total} weights, {reference_name} has "
                f"{len(reference)}. Merge models of one architecture."
            )

    def read(self, i):
        dataset = self.layout[i]
        if dataset is None or dataset not in self.h5:
            return None
        return self.h5[dataset][()]

    def close(self):
        self.h5.close()
        if self._window is not None:
            self._window.close()
