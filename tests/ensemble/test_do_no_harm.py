"""Do no harm: with one useless member, weighted / selected ensembles stay near the best member."""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from kfuse.ensemble import WeightedEnsemble


@pytest.fixture(scope="module")
def digits_members():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, val, test = order[:1000], order[1000:1400], order[1400:]
    keras.utils.set_random_seed(0)
    good = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    good.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", jit_compile=False)
    good.fit(x[train], y[train], epochs=25, batch_size=64, verbose=0)
    useless = keras.Sequential([keras.Input((64,)), keras.layers.Dense(1), keras.layers.Dense(10, activation="softmax")])
    useless.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", jit_compile=False)
    useless.fit(x[train], y[train], epochs=1, batch_size=64, verbose=0)
    return [good, useless], (x[val], y[val]), (x[test], y[test])


@pytest.mark.parametrize("method", ["metric", "optimize", "caruana"])
def test_weights_do_no_harm_with_a_useless_member(digits_members, method):
    members, (xv, yv), (xt, yt) = digits_members
    acc = [np.mean(np.argmax(m.predict(xt, verbose=0), -1) == yt) for m in members]
    assert acc[0] > 0.9 and acc[1] < 0.5  # the case: one good, one useless member
    ens = WeightedEnsemble(members, method=method).fit(xv, yv)
    ens_acc = ens.score(xt, yt)
    assert ens_acc >= acc[0] - 0.01, (method, ens.weights_, ens_acc, acc)
    assert ens.weights_[1] < 0.2
