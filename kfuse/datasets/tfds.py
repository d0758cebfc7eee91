"""`from_tfds`: a TFDS data set already on disk -> the named inputs a stack takes.

Nothing is downloaded: the data set is read from its prepared folder under `data_dir`
(`<data_dir>/<name>/<version>/`) with `tfds.builder_from_directory`, which never looks
at the network. `tensorflow_datasets` is imported on first call only.
"""

import difflib
import os

import numpy as np

from kfuse.datasets.dataset import Dataset


def _version_key(text):
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return (-1,)


def dataset_folder(name, data_dir, version=None):
    """The prepared folder of `name` under `data_dir` (newest version unless given).

    Example:

    ```python
    import os, tempfile
    from kfuse.datasets.tfds import dataset_folder

    root = tempfile.mkdtemp()
    os.makedirs(os.path.join(root, "toy", "1.0.0"))
    open(os.path.join(root, "toy", "1.0.0", "dataset_info.json"), "w").close()
    dataset_folder("toy", root).endswith("1.0.0")  # True
    ```
    """
    root = os.path.join(os.fspath(data_dir), name)
    if not os.path.isdir(root):
        found = sorted(os.listdir(data_dir)) if os.path.isdir(data_dir) else []
        close = difflib.get_close_matches(name, found, n=3)
        raise FileNotFoundError(
            f"from_tfds: no prepared TFDS data set {name!r} in data_dir={os.fspath(data_dir)!r} "
            f"(it holds {found}){'; did you mean ' + str(close) + '?' if close else ''}. "
            "kfuse never downloads: prepare it first (tfds.builder(name).download_and_prepare()"
            " on a machine with network, or tfds.dataset_builders.store_as_tfds_dataset)."
        )
    versions = sorted(
        (v for v in os.listdir(root) if os.path.exists(os.path.join(root, v, "dataset_info.json"))),
        key=_version_key,
    )
    if not versions:
        raise FileNotFoundError(f"from_tfds: {root} holds no prepared version (no dataset_info.json)")
    if version is None:
        return os.path.join(root, versions[-1])
    if str(version) not in versions:
        raise ValueError(f"from_tfds: {name!r} has versions {versions}; received version={version!r}")
    return os.path.join(root, str(version))


def _import_tfds():
    """``tensorflow_datasets``, or a ModuleNotFoundError that says how to install it."""
    try:
        import tensorflow_datasets
    except ImportError as error:
        missing = getattr(error, "name", None) or "tensorflow_datasets"
        raise ModuleNotFoundError(
            f"kfuse.datasets.from_tfds reads TFDS folders with the 'tensorflow_datasets' "
            f"package, which could not be imported (missing: {missing!r}). Install it: "
            "pip install tensorflow-datasets (it also needs TensorFlow: pip install "
            "\"kfuse[cpu]\" or \"kfuse[tf]\")",
            name="tensorflow_datasets",
        ) from error
    return tensorflow_datasets


def from_tfds(name, data_dir, inputs, label="label", splits=("train", "test"), version=None):
    """Load a local TFDS data set into named inputs, one `Dataset` with two splits.

    Args:
        name (str): the TFDS data set name (its folder under `data_dir`).
        data_dir (str | os.PathLike): the TFDS data folder (no default: nothing is fetched).
        inputs (dict[str, str]): dict of TFDS feature name -> model input name, e.g. `{"image":
            "pixels"}`.
        label (str | None): the feature holding the labels (class ids), or None for no labels.
        splits (tuple[str, str]): (training split, test split) names.
        version (str | None): the version folder to read (default: the newest).

    Returns:
        Dataset: a `Dataset` whose `x_train` / `x_test` map each input name to a numpy array.

    Example:

    ```python
    import tempfile, numpy as np, tensorflow as tf, tensorflow_datasets as tfds
    import kfuse.datasets

    data_dir = tempfile.mkdtemp()
    rows = {"x": np.arange(12, dtype="float32").reshape(6, 2), "label": np.arange(6) % 2}
    features = tfds.features.FeaturesDict({"x": tfds.features.Tensor(shape=(2,), dtype=np.float32),
                                           "label": tfds.features.ClassLabel(num_classes=2)})
    tfds.dataset_builders.store_as_tfds_dataset(
        "toy", "1.0.0", features, {s: tf.data.Dataset.from_tensor_slices(rows) for s in ("train", "test")},
        data_dir=data_dir)
    data = kfuse.datasets.from_tfds("toy", data_dir, inputs={"x": "signal"})
    data.x_train["signal"].shape  # (6, 2)
    ```
    """
    if not isinstance(inputs, dict) or not inputs:
        raise TypeError(
            "from_tfds: inputs must be a non-empty dict of TFDS feature name -> input name, "
            f"e.g. {{'image': 'image'}}; received {inputs!r}"
        )
    if len(splits) != 2:
        raise ValueError(f"from_tfds: splits must be (train split, test split); received {splits!r}")
    tfds = _import_tfds()
    folder = dataset_folder(name, data_dir, version)
    builder = tfds.builder_from_directory(folder)
    features = builder.info.features
    wanted = list(inputs) + ([label] if label is not None else [])
    for feature in wanted:
        if feature not in features:
            close = difflib.get_close_matches(feature, list(features), n=2)
            raise ValueError(
                f"from_tfds: {name!r} has no feature {feature!r}; features: {list(features)}"
                + (f". Did you mean {close}?" if close else "")
            )
    known = list(builder.info.splits)
    for split in splits:
        if split not in known:
            raise ValueError(f"from_tfds: {name!r} has splits {known}; received {split!r}")
    parts = []
    for split in splits:
        arrays = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))
        x = {inputs[f]: np.asarray(arrays[f]) for f in inputs}
        y = np.asarray(arrays[label]).astype("int64") if label is not None else None
        parts.append((x, y))
    classes = ()
    if label is not None:
        names = getattr(features[label], "names", None)
        classes = tuple(names) if names else tuple(str(v) for v in np.unique(parts[0][1]))
    return Dataset(
        name=name,
        x_train=parts[0][0],
        y_train=parts[0][1],
        x_test=parts[1][0],
        y_test=parts[1][1],
        classes=classes,
        task=f"TFDS {name}",
        source=folder,
        info={"splits": {s: builder.info.splits[s].num_examples for s in splits}},
    )
