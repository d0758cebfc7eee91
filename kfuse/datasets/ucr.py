"""UCR / UEA time-series classification sets bundled in the aeon wheel (`.ts` files).

aeon ships them under `aeon/datasets/data/<Name>/<Name>_{TRAIN,TEST}.ts`; this module
parses those files itself (no aeon import, so no download can be triggered). Series come
channels-last, `(n, length, channels)`, the layout Keras's Conv1D / GRU layers take.
"""

import difflib

import numpy as np

from kfuse.datasets.dataset import Dataset, encode_labels
from kfuse.datasets.wheels import package_dir, wheel_file

DATA_DIR = "datasets/data"

#: published test accuracy on the default split (Ismail Fawaz et al. 2019 for ResNet and
#: FCN, the UCR archive for 1-NN, Ismail Fawaz et al. 2020 for InceptionTime, Middlehurst
#: et al. 2021 for HIVE-COTE 2); see REFERENCES.md
PUBLISHED_ACCURACY = {
    "ArrowHead": {"1-NN ED": 0.800, "ResNet": 0.838, "FCN": 0.843, "InceptionTime": 0.846, "HC2": 0.869},
    "ItalyPowerDemand": {"1-NN ED": 0.955, "ResNet": 0.962, "InceptionTime": 0.965, "HC2": 0.970},
    "GunPoint": {"1-NN DTW": 0.907, "ResNet": 0.991, "InceptionTime": 1.000},
}

#: BasicMotions' six channels: a smart watch's 3-axis accelerometer, then its gyroscope
BASIC_MOTIONS_MODALITIES = {"accelerometer": (0, 1, 2), "gyroscope": (3, 4, 5)}


def available():
    """Names of the classification sets the installed aeon bundles.

    Example:

    ```python
    from kfuse.datasets.ucr import available

    "GunPoint" in available()  # True
    ```
    """
    root = package_dir("aeon", "load_ucr") / DATA_DIR
    return sorted(p.name for p in root.iterdir() if (p / f"{p.name}_TRAIN.ts").exists())


def read_ts(path):
    r"""Parse one `.ts` file: (array (n, length, channels) float32, labels, class names).

    Example:

    ```python
    import os, tempfile
    from kfuse.datasets.ucr import read_ts

    path = os.path.join(tempfile.mkdtemp(), "toy.ts")
    with open(path, "w") as f:
        f.write("@classLabel true a b\n@data\n1,2,3:a\n3,2,1:b\n")
    x, labels, classes = read_ts(path)  # x.shape (2, 3, 1), classes ('a', 'b')
    ```
    """
    classes, rows, labels, in_data = None, [], [], False
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                lower = line.lower()
                if lower.startswith("@classlabel"):
                    parts = line.split()
                    classes = tuple(parts[2:]) if parts[1].lower() == "true" else None
                elif lower.startswith("@data"):
                    in_data = True
                continue
            *dims, label = line.split(":")
            try:
                rows.append([[float(v) if v != "?" else np.nan for v in d.split(",")] for d in dims])
            except ValueError as err:
                raise ValueError(f"{path}: line {number} is not a .ts data row ({err})") from None
            labels.append(label.strip())
    lengths = {len(d) for r in rows for d in r}
    if len(lengths) != 1:
        raise ValueError(f"{path}: series of unequal length {sorted(lengths)[:5]}; not supported")
    x = np.asarray(rows, dtype="float32").transpose(0, 2, 1)
    return x, np.asarray(labels), classes


def load_ucr(name, input_name="series"):
    """A UCR/UEA classification set from the aeon wheel, with its published split.

    Args:
        name (str): the data set's name, e.g. "ArrowHead", "GunPoint", "ItalyPowerDemand"
            (`kfuse.datasets.ucr.available()` lists what the installed aeon bundles).
        input_name (str): the name of the one input.

    Returns:
        Dataset: a `Dataset`: `x_train[input_name]` of shape (n, length, channels), float32.

    Example:

    ```python
    import kfuse.datasets

    (x, y), (x_test, y_test) = kfuse.datasets.load_ucr("GunPoint")
    x["series"].shape, x_test["series"].shape  # (50, 150, 1), (150, 150, 1)
    ```
    """
    names = available()
    if name not in names:
        close = difflib.get_close_matches(str(name), names, n=3)
        raise ValueError(
            f"load_ucr: no data set {name!r} in the installed aeon; "
            + (f"did you mean {close}? " if close else "")
            + f"Available: {names}"
        )
    parts = {}
    for split in ("TRAIN", "TEST"):
        path = wheel_file("aeon", f"{DATA_DIR}/{name}/{name}_{split}.ts", "load_ucr")
        parts[split] = read_ts(path)
    (x, labels, classes), (x_test, labels_test, _) = parts["TRAIN"], parts["TEST"]
    y, y_test, classes = encode_labels(labels, labels_test, classes)
    return Dataset(
        name=name,
        x_train={input_name: x},
        y_train=y,
        x_test={input_name: x_test},
        y_test=y_test,
        classes=classes,
        task=f"{len(classes)}-class time-series classification",
        source=str(path.parent),
        info={"published_accuracy": dict(PUBLISHED_ACCURACY.get(name, {}))},
    )


def load_basic_motions():
    """UEA BasicMotions as two modalities: "accelerometer" and "gyroscope".

    40 training and 40 test recordings of 100 steps, four activities (Badminton,
    Running, Standing, Walking); each modality is (n, 100, 3): the sensor's x, y, z.

    Example:

    ```python
    import kfuse.datasets

    (x, y), (x_test, y_test) = kfuse.datasets.load_basic_motions()
    x["accelerometer"].shape, x["gyroscope"].shape  # (40, 100, 3), (40, 100, 3)
    ```
    """
    data = load_ucr("BasicMotions", input_name="all")

    def split(x):
        return {m: np.ascontiguousarray(x["all"][..., list(c)]) for m, c in BASIC_MOTIONS_MODALITIES.items()}

    return Dataset(
        name="BasicMotions",
        x_train=split(data.x_train),
        y_train=data.y_train,
        x_test=split(data.x_test),
        y_test=data.y_test,
        classes=data.classes,
        task="4-class activity recognition from two sensors",
        source=data.source,
        info={"modalities": dict(BASIC_MOTIONS_MODALITIES)},
    )


RESULTS_DIR = "testing/example_results_files/classification/accuracy"


def published_results(name, classifiers=("InceptionTime", "HC2"), resample=0):
    """Test accuracy of published classifiers on `name`, from aeon's results files.

    aeon ships the accuracies of the bake-off results (30 resamples per data set, in
    `aeon/testing/example_results_files/classification/accuracy/<Classifier>_accuracy.csv`);
    resample 0 is the default train / test split.

    Example:

    ```python
    from kfuse.datasets import published_results

    published_results("GunPoint")  # {'InceptionTime': 1.0, 'HC2': 1.0}
    ```
    """
    import pandas as pd

    out = {}
    for classifier in classifiers:
        path = wheel_file("aeon", f"{RESULTS_DIR}/{classifier}_accuracy.csv", "published_results")
        table = pd.read_csv(path, index_col=0)
        if name not in table.index:
            raise ValueError(f"published_results: {path.name} has no row {name!r}")
        out[classifier] = float(table.loc[name].iloc[resample])
    return out
