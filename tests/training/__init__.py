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
