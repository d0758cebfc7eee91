"""Fixtures for the tuning tests: two small MNIST-1D bases trained once per session."""

import keras
import numpy as np
import pytest


def small_base(name, width, seed):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((40,), name="signal")
    x = keras.layers.Dense(width, activation="relu", name="hidden")(inp)
    out = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out, name=name)


@pytest.fixture(scope="session")
def data(mnist1d):
    (x, y), (x_test, y_test) = mnist1d
    return {
        "train": (x[:800], y[:800]),
        "val": (x[800:1000], y[800:1000]),
        "base": (x[1000:3000], y[1000:3000]),
        "test": (x_test[:400], y_test[:400]),
    }


@pytest.fixture(scope="session")
def bases(data):
    """Two MLP bases (widths 32 and 16) trained for a few epochs on rows the search never sees."""
    x, y = data["base"]
    models = []
    for name, width, seed in (("mlp_a", 32, 1), ("mlp_b", 16, 2)):
        model = small_base(name, width, seed)
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=6, batch_size=100, verbose=0)
        models.append(model)
    return models


@pytest.fixture
def branches(bases):
    import kfuse

    return [
        kfuse.Branch(bases[0], name="a", output="probabilities"),
        kfuse.Branch(bases[1], name="b", output="probabilities"),
    ]


def accuracy(model, x, y):
    return float(np.mean(model.predict(x, verbose=0).argmax(-1) == y))
