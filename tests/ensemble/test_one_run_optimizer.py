"""The one-run ensembles take an optimizer by name, by Keras config or as an instance whose
settings (not its learning rate, not its state) are copied."""

import keras
import numpy as np

from kfuse.ensemble import SWA, SnapshotEnsemble

X = np.random.default_rng(3).normal(size=(64, 5)).astype("float32")
Y = (X[:, 0] - X[:, 1] > 0).astype("int64")


def net():
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])


def snapshot_weights(optimizer):
    fitted = SnapshotEnsemble(net, n_estimators=2, epochs=4, batch_size=16, learning_rate=5e-2,
                              optimizer=optimizer, random_state=0).fit(X, Y)
    return [w for snap in fitted.estimators_ for w in snap.get_weights()]


def test_instance_and_config_give_the_same_run_and_the_instance_is_not_trained():
    # epsilon=0.5 changes Adam's steps a lot: equal runs mean the setting was carried over
    instance = keras.optimizers.Adam(learning_rate=123.0, epsilon=0.5)
    by_instance = snapshot_weights(instance)
    by_config = snapshot_weights({"class_name": "adam", "config": {"epsilon": 0.5}})
    by_name = snapshot_weights("adam")
    for a, b in zip(by_instance, by_config, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(by_instance, by_name, strict=True)) > 1e-3
    assert int(instance.iterations.numpy()) == 0 and float(instance.learning_rate.numpy()) == 123.0


def test_swa_copies_the_instance_settings_for_both_phases():
    fitted = SWA(net, epochs=2, swa_epochs=2, learning_rate=1e-2, swa_learning_rate=5e-3, batch_size=16,
                 optimizer=keras.optimizers.SGD(momentum=0.9), random_state=0).fit(X, Y)
    optimizer = fitted.network_.optimizer
    assert type(optimizer).__name__ == "SGD" and optimizer.momentum == 0.9
    np.testing.assert_allclose(float(optimizer.learning_rate.numpy()), 5e-3, rtol=1e-6)
