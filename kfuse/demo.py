"""The main job: three MNIST-1D bases fused into one model, compared, exported.

Run it with `kfuse demo` (or `make demo`). Steps:

1. build MNIST-1D offline (4,000 train, 1,000 test);
2. split the training rows: 80% train the bases, 20% are held out for the meta-learner
   (so it never learns from predictions the bases made on their own training data);
3. train a CNN, a GRU and an MLP, save each to `saved_models/mnist1d_<name>.keras`;
4. stack the saved files with kfuse: frozen bases handing over probabilities, fused by
   a small regularised meta-learner trained on the held-out rows;
5. print each base's and the fused model's test accuracy beside the paper's figures;
6. export the fused model to `saved_models/mnist1d_stack/<version>/` for TF Serving.
"""

import os
import time

import keras
import numpy as np
from keras import layers

from kfuse.data import MNIST1D_PAPER_ACCURACY, holdout_split, load_mnist1d

SIGNAL = 40
CLASSES = 10


def build_cnn(name="cnn"):
    """3 x Conv1D(32, stride 2) + GlobalAveragePooling, softmax out (the paper's CNN)."""
    inp = keras.Input((SIGNAL,), name="signal")
    x = layers.Reshape((SIGNAL, 1))(inp)
    for i in range(3):
        x = layers.Conv1D(32, 5, strides=2, padding="same", activation="relu", name=f"conv{i}")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    x = layers.Dense(64, activation="relu", name="features")(x)
    out = layers.Dense(CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out, name=name)


def build_gru(name="gru"):
    """GRU(64) over the signal, softmax out."""
    inp = keras.Input((SIGNAL,), name="signal")
    x = layers.Reshape((SIGNAL, 1))(inp)
    x = layers.GRU(64, name="gru")(x)
    out = layers.Dense(CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out, name=name)


def build_mlp(name="mlp"):
    """MLP(100, 100), softmax out."""
    inp = keras.Input((SIGNAL,), name="signal")
    x = layers.Dense(100, activation="relu", name="hidden0")(inp)
    x = layers.Dense(100, activation="relu", name="hidden1")(x)
    out = layers.Dense(CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out, name=name)


BASES = {"cnn": build_cnn, "gru": build_gru, "mlp": build_mlp}
EPOCHS = {"cnn": 60, "gru": 60, "mlp": 60}
QUICK_EPOCHS = {"cnn": 8, "gru": 4, "mlp": 8}


def train_base(name, x, y, epochs, seed=0, verbose=0, learning_rate=3e-3):
    keras.utils.set_random_seed(seed)
    model = BASES[name]()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=epochs, batch_size=100, verbose=verbose)
    return model


def accuracy(probabilities_or_logits, y):
    return float(np.mean(np.argmax(probabilities_or_logits, axis=-1) == y))
