"""`Dataset`: named inputs, labels and the published split of one data set."""

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """A classification data set with its published train / test split.

    `x_train` and `x_test` are dicts of input name -> array (what `kfuse.stack` and
    `kfuse.Stacker` take); `y_train` / `y_test` are int64 class ids indexing `classes`.
    Unpacks like Keras's loaders: `(x, y), (x_test, y_test) = dataset`.

    Example:

    ```python
    import numpy as np
    from kfuse.datasets import Dataset

    data = Dataset("toy", {"a": np.zeros((4, 2))}, np.array([0, 1, 0, 1]),
                   {"a": np.zeros((2, 2))}, np.array([1, 0]), ("no", "yes"), "binary", "memory")
    (x, y), (x_test, y_test) = data
    data.input_shapes, data.num_classes  # {'a': (2,)}, 2
    ```
    """

    name: str
    x_train: dict
    y_train: np.ndarray
    x_test: dict
    y_test: np.ndarray
    classes: tuple
    task: str
    source: str
    info: dict = field(default_factory=dict)

    def __iter__(self):
        yield self.x_train, self.y_train
        yield self.x_test, self.y_test

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def input_names(self):
        return list(self.x_train)

    @property
    def input_shapes(self):
        """Input name -> shape without the batch axis (for `Branch(inputs={...})`)."""
        return {k: tuple(v.shape[1:]) for k, v in self.x_train.items()}

    def __repr__(self):
        shapes = {k: v.shape for k, v in self.x_train.items()}
        return (
            f"Dataset({self.name!r}, task={self.task!r}, train={len(self.y_train)}, "
            f"test={len(self.y_test)}, classes={self.num_classes}, inputs={shapes})"
        )


def encode_labels(train, test, classes=None):
    """String labels -> int64 ids in the order of `classes` (default: sorted).

    Example:

    ```python
    from kfuse.datasets.dataset import encode_labels

    encode_labels(["b", "a"], ["a"])  # (array([1, 0]), array([0]), ('a', 'b'))
    ```
    """
    train, test = np.asarray(train).astype(str), np.asarray(test).astype(str)
    classes = tuple(classes) if classes is not None else tuple(sorted(set(train) | set(test)))
    lookup = {c: i for i, c in enumerate(classes)}
    unknown = sorted((set(train) | set(test)) - set(lookup))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the declared classes {classes}")
    ids = [np.array([lookup[v] for v in part], dtype="int64") for part in (train, test)]
    return ids[0], ids[1], classes


def read_npz(path, where, example="x=..., y=..."):
    """Every array of the `.npz` file at `path`, by name. A damaged or foreign file is
    refused naming `where` (e.g. "--data 'a.npz'") and how to write it again.

    Example:

    ```python
    import numpy as np, os, tempfile
    from kfuse.datasets.dataset import read_npz

    path = os.path.join(tempfile.mkdtemp(), "d.npz")
    np.savez(path, x=np.zeros((2, 3)), y=np.array([0, 1]))
    sorted(read_npz(path, f"data {path!r}"))  # ['x', 'y']
    ```
    """
    import zipfile

    try:
        with np.load(path) as archive:
            return {k: archive[k] for k in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{where} is damaged or not an .npz file ({type(error).__name__}); write it again with "
            f"np.savez(path, {example})"
        ) from None
