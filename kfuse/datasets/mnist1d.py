"""Data in: arrays, dicts of arrays, and the offline MNIST-1D loader.

MNIST-1D (Greydanus 2020) is generated locally by the `mnist1d` package: 4,000 training
and 1,000 test signals of length 40, ten classes. Generating it takes a few seconds, so
the arrays are cached as an `.npz` under `KFUSE_CACHE_DIR` (default `~/.cache/kfuse`).
"""

import os

import numpy as np

from kfuse.datasets.dataset import read_npz

#: accuracies reported in the MNIST-1D paper (test set, default split)
MNIST1D_PAPER_ACCURACY = {
    "logistic regression": 0.32,
    "MLP": 0.68,
    "CNN": 0.94,
    "GRU": 0.91,
    "human": 0.96,
}


def cache_dir():
    path = os.environ.get("KFUSE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "kfuse")
    os.makedirs(path, exist_ok=True)
    return path


def load_mnist1d(cache=True):
    """MNIST-1D with the package's default arguments, offline and deterministic.

    Returns:
        tuple: `((x_train, y_train), (x_test, y_test))`, float32 arrays of shape (n, 40)
            and int64 labels; 4,000 training and 1,000 test rows.

    Example:

    ```python
    from kfuse.datasets.mnist1d import load_mnist1d
    (x, y), (x_test, y_test) = load_mnist1d()
    ```
    """
    path = os.path.join(cache_dir(), "mnist1d_default.npz")
    if cache and os.path.exists(path):
        with np.load(path) as d:
            return (d["x"], d["y"]), (d["x_test"], d["y_test"])
    from mnist1d.data import get_dataset_args, make_dataset

    d = make_dataset(get_dataset_args())
    arrays = {
        "x": d["x"].astype("float32"),
        "y": d["y"].astype("int64"),
        "x_test": d["x_test"].astype("float32"),
        "y_test": d["y_test"].astype("int64"),
    }
    if cache:
        tmp = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    return (arrays["x"], arrays["y"]), (arrays["x_test"], arrays["y_test"])


def holdout_split(n, fraction, seed=0, stratify=None):
    """Indices (fit_idx, holdout_idx) with `fraction` of `n` rows held out."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    return train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)


def load_data_section(data):
    """(x, y, validation or None) from a checked `data` section of a tuning config.

    `source` is "mnist1d" (the demo data) or an `.npz` file with arrays `x`, `y` (and
    optionally `x_val`, `y_val`; other names via the section's keys).
    """
    if data["source"] == "mnist1d":
        (x, y), (x_val, y_val) = load_mnist1d()
        validation = None
    else:
        arrays = read_npz(data["source"], f"data {data['source']!r}")
        keys = {k: data.get(k, k) for k in ("x", "y", "x_val", "y_val")}
        for k in ("x", "y"):
            if keys[k] not in arrays:
                raise ValueError(f"data {data['source']!r} has no array {keys[k]!r}; it holds {sorted(arrays)}")
        x, y = arrays[keys["x"]], arrays[keys["y"]]
        has_val = keys["x_val"] in arrays and keys["y_val"] in arrays
        validation = (arrays[keys["x_val"]], arrays[keys["y_val"]]) if has_val else None
    rows = data.get("rows")
    if rows:
        x, y = x[:rows], y[:rows]
    return x, y, validation
