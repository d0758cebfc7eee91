"""scikit-learn's bundled digits (1,797 8x8 images, UCI optdigits test part)."""

import numpy as np

from kfuse.datasets.dataset import Dataset
from kfuse.datasets.wheels import package_dir


def load_digits(input_name="image"):
    """scikit-learn's digits as images, with the split of scikit-learn's own example.

    "Recognizing hand-written digits" (scikit-learn docs) trains on the first half and
    tests on the second (`train_test_split(test_size=0.5, shuffle=False)`): 898 training
    and 899 test images; its SVC(gamma=0.001) scores 0.97 there. Pixels are scaled from
    0-16 to [0, 1]; images are (8, 8, 1) float32.

    Example:

    ```python
    import kfuse.datasets

    (x, y), (x_test, y_test) = kfuse.datasets.load_digits()
    x["image"].shape, x_test["image"].shape  # (898, 8, 8, 1), (899, 8, 8, 1)
    ```
    """
    package_dir("sklearn", "load_digits")
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = (bunch.images / 16.0).astype("float32")[..., None]
    y = bunch.target.astype("int64")
    n_train = len(y) - int(np.ceil(0.5 * len(y)))
    return Dataset(
        name="digits",
        x_train={input_name: images[:n_train]},
        y_train=y[:n_train],
        x_test={input_name: images[n_train:]},
        y_test=y[n_train:],
        classes=tuple(str(c) for c in bunch.target_names),
        task="10-class handwritten digit recognition",
        source="sklearn/datasets/data/digits.csv.gz",
        info={"published_accuracy": {"SVC(gamma=0.001), scikit-learn example": 0.97}},
    )
