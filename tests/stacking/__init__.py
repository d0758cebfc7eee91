"""Shared small data and models for the Stacker tests (tiny, so tests stay fast)."""

import keras
import numpy as np


def blobs(n=90, classes=3, width=8, seed=0, spread=3.0):
    """Separable Gaussian blobs: x (n, width) float32, y (n,) int labels 0..classes-1."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centers = np.random.default_rng(123).normal(size=(classes, width)) * spread
    x = (centers[y] + rng.normal(size=(n, width))).astype("float32")
    return x, y.astype("int64")


def small_model(name, width=8, classes=3, hidden=16, input_name="signal"):
    inp = keras.Input((width,), name=input_name)
    x = keras.layers.Dense(hidden, activation="relu", name="hidden")(inp)
    out = keras.layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out, name=name)


def trained_model(name, x, y, epochs=20, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = small_model(name, width=x.shape[1], **kwargs)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


def accuracy(scores, y):
    """Accuracy of class scores (n, k), or of class labels (n,) such as Stacker.predict's."""
    scores = np.asarray(scores)
    labels = scores if scores.ndim == 1 else np.argmax(scores, axis=-1)
    return float(np.mean(labels == y))


def time_rows(n=120):
    """`n` rows in time order for the time-ordered cv tests: x (n, 4) float32, binary y."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int64")
    return x, y


def two_dense_branches():
    """Two fresh one-layer branches on input "x" (4 features), trained 1 epoch each."""
    import kfuse

    inputs = {"x": (4,)}
    settings = {"epochs": 1, "batch_size": 32}
    return [
        kfuse.Branch(lambda t: keras.layers.Dense(4, activation="relu")(t), name="a", inputs=inputs, fit=settings),
        kfuse.Branch(lambda t: keras.layers.Dense(2, activation="relu")(t), name="b", inputs=inputs, fit=settings),
    ]
