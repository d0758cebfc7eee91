"""Fixtures for the tuning tests: two small MNIST-1D bases trained once per session."""

import keras
import numpy as np
import pytest


def small_base(name, width, seed, conv=False):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((40,), name="signal")
    x = inp
    if conv:
        x = keras.layers.Reshape((40, 1))(x)
        x = keras.layers.Conv1D(8, 5, strides=2, activation="relu", name="conv0")(x)
        x = keras.layers.Conv1D(8, 3, strides=2, activation="relu", name="conv1")(x)
        x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(width, activation="relu", name="hidden")(x)
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
    """An MLP (hidden width 32) and a small CNN (hidden width 16), trained for a few epochs
    on rows the search never sees (about 35% and 45% test accuracy)."""
    x, y = data["base"]
    models = []
    for name, width, seed, conv in (("mlp", 32, 1, False), ("cnn", 16, 2, True)):
        model = small_base(name, width, seed, conv)
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=10, batch_size=100, verbose=0)
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
