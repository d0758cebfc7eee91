"""How tests/data/kfuse_0_2_0*.keras were written: run with kfuse 0.2.0 (commit 849e536) first
on the path, e.g. `git worktree add /tmp/k020 849e536 && PYTHONPATH=/tmp/k020 python this.py`."""

import keras
import numpy as np

import kfuse
from kfuse.ensemble import BaggingClassifier

OUT = "tests/data"


def base(n):
    return keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(n, activation="relu"), keras.layers.Dense(2, activation="softmax")],
        name=f"b{n}",
    )


def build():
    model = base(4)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


if __name__ == "__main__":
    print(kfuse.__file__, kfuse.__version__)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    branches = [kfuse.Branch(base(8), name="a", trainable=False), kfuse.Branch(base(4), name="b")]
    fused = kfuse.stack(branches, fusion="gated", meta=(8,), head=2)
    fused.compile("adam")
    xd = {"a_input": x, "b_input": x}
    fused.fit(xd, y, epochs=1, verbose=0)
    fused.save(f"{OUT}/kfuse_0_2_0.keras")
    np.save(f"{OUT}/kfuse_0_2_0_pred.npy", fused.predict(xd, verbose=0))
    bag = BaggingClassifier(build, n_estimators=2, fit_params={"epochs": 1}, random_state=0).fit(x, y)
    bag.model_.save(f"{OUT}/kfuse_0_2_0_bagging.keras")
    np.save(f"{OUT}/kfuse_0_2_0_bagging_pred.npy", bag.model_.predict(x, verbose=0))
    np.save(f"{OUT}/kfuse_0_2_0_x.npy", x)
