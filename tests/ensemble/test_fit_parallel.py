"""`fit_parallel`: members trained in one joint Keras model train as they would alone."""

import keras
import numpy as np

from kfuse.trainers.members import fit_parallel

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 5)).astype("float32")
Y = (X[:, 0] - X[:, 1] > 0).astype("int64")


def member(seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((5,), name="x"), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_unshuffled_joint_training_equals_each_member_alone():
    weights = [np.bincount(RNG.integers(0, 64, 64), minlength=64), np.ones(64)]
    joint = [member(1), member(2)]
    fit_parallel(joint, X, Y, weights, {"epochs": 3, "batch_size": 16, "shuffle": False}, seed=0)
    for i, (trained, w) in enumerate(zip(joint, weights, strict=True)):
        alone = member(i + 1)
        alone.fit(X, Y, sample_weight=w.astype("float32"), epochs=3, batch_size=16, shuffle=False, verbose=0)
        for got, want in zip(trained.get_weights(), alone.get_weights(), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_shuffled_members_read_the_rows_in_their_own_orders():
    # two members with the same initial weights and the same rows: only the batch order can
    # tell them apart (with one shared order, as before, they ended identical)
    a, b = member(3), member(3)
    fit_parallel([a, b], X, Y, [np.ones(64), np.ones(64)], {"epochs": 2, "batch_size": 16}, seed=0)
    assert max(float(np.max(np.abs(u - v))) for u, v in zip(a.get_weights(), b.get_weights(), strict=True)) > 1e-3
    # and the orders come from the seed: the same seed, the same training
    c, d = member(3), member(3)
    keras.utils.set_random_seed(0)  # Model.fit's own epoch shuffle
    fit_parallel([c, d], X, Y, [np.ones(64), np.ones(64)], {"epochs": 2, "batch_size": 16}, seed=0)
    e, f = member(3), member(3)
    keras.utils.set_random_seed(0)
    fit_parallel([e, f], X, Y, [np.ones(64), np.ones(64)], {"epochs": 2, "batch_size": 16}, seed=0)
    for u, v in zip(c.get_weights() + d.get_weights(), e.get_weights() + f.get_weights(), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)


def test_validation_data_reaches_every_member():
    a, b = member(4), member(5)
    fit_parallel([a, b], X, Y, [np.ones(64), np.ones(64)],
                 {"epochs": 1, "batch_size": 16, "validation_data": (X[:16], Y[:16])}, seed=0)
    assert a.predict(X[:2], verbose=0).shape == (2, 2)


def test_members_of_one_builder_share_an_optimizer_setting():
    # each builder call makes its own Adam, named "adam", "adam_1", ...: the same setting
    from kfuse.ensemble.base import same_optimizers

    assert same_optimizers([member(0), member(1)])
    other = member(2)
    other.compile(keras.optimizers.Adam(1e-3), other.loss)
    assert not same_optimizers([member(0), other])
