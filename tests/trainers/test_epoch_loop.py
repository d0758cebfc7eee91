"""`fit_in_memory`: the same training as `Model.fit`, one traced call per epoch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfuse.trainers.epoch_loop import fit_in_memory, supports
from tests.stacking import blobs


def two_input_model(dropout=0.0, seed=0):
    keras.utils.set_random_seed(seed)
    a, b = keras.Input((8,), name="a"), keras.Input((8,), name="b")
    h = keras.layers.Concatenate()([a, b])
    h = keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3))(h)
    h = keras.layers.Dropout(dropout)(h)
    out = keras.layers.Dense(3)(h)
    model = keras.Model([a, b], out)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=False,
    )
    return model


@pytest.fixture(scope="module")
def data():
    x, y = blobs(150, seed=0)
    xv, yv = blobs(60, seed=1)
    return [x, x[:, ::-1].copy()], y, [xv, xv[:, ::-1].copy()], yv


def test_same_batches_same_model_as_keras_fit(data):
    x, y, xv, yv = data
    settings = dict(epochs=4, batch_size=32, shuffle=False, validation_data=(xv, yv))
    reference, fast = two_input_model(), two_input_model()
    want = reference.fit(x, y, verbose=0, **settings).history
    got = fit_in_memory(fast, x, y, **settings).history
    assert sorted(got) == sorted(want) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    for key in want:  # 150 rows / 32: the last batch of each epoch is partial
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)
    for w_fast, w_ref in zip(fast.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(w_fast, w_ref, rtol=1e-5, atol=1e-6)
    assert int(fast.optimizer.iterations.numpy()) == 4 * 5


def test_validation_split_takes_the_last_rows_like_keras(data):
    x, y, _, _ = data
    reference, fast = two_input_model(), two_input_model()
    settings = dict(epochs=2, batch_size=50, shuffle=False, validation_split=0.2)
    want = reference.fit(x, y, verbose=0, **settings).history
    got = fit_in_memory(fast, x, y, **settings).history
    np.testing.assert_allclose(got["val_loss"], want["val_loss"], rtol=1e-5)


def test_shuffling_is_seeded_and_learns(data):
    x, y, xv, yv = data
    runs = []
    for seed in (7, 7, 8):
        model = two_input_model(dropout=0.2)
        history = fit_in_memory(model, x, y, epochs=15, batch_size=16, seed=seed)
        runs.append((history.history["loss"], model.get_weights()))
    (loss_a, w_a), (loss_b, w_b), (_, w_c) = runs
    assert loss_a == loss_b  # same seed: same order, same dropout masks
    for u, v in zip(w_a, w_b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not all(np.allclose(u, v) for u, v in zip(w_a, w_c, strict=True))
    assert loss_a[-1] < 0.5 * loss_a[0]
    model = two_input_model()
    fit_in_memory(model, x, y, epochs=15, batch_size=16, seed=7)
    assert np.mean(model.predict(xv, verbose=0).argmax(-1) == yv) > 0.9


def test_epoch_callbacks_run_and_can_stop_training(data):
    x, y, xv, yv = data
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append((epoch, dict(logs))))
    stop = keras.callbacks.EarlyStopping("val_loss", patience=0, min_delta=10.0)  # stops after 2 epochs
    model = two_input_model()
    history = fit_in_memory(model, x, y, epochs=20, validation_data=(xv, yv), callbacks=[record, stop])
    assert [e for e, _ in seen] == [0, 1] and len(history.history["loss"]) == 2
    assert set(seen[0][1]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.epoch == [0, 1]


def test_supports_only_what_it_reproduces(data):
    x, y, xv, yv = data
    model = two_input_model()
    assert supports(model, x, y, {"epochs": 2, "validation_data": (xv, yv), "callbacks": []})
    assert supports(model, x, y, {"sample_weight": np.ones(len(y))})
    assert not supports(model, x, y, {"sample_weight": list(np.ones(len(y)))})
    assert not supports(model, x, y, {"class_weight": {0: 1.0, 1: 2.0, 2: 1.0}})
    assert not supports(model, x, y, {"shuffle": "batch"})
    assert not supports(model, tf.data.Dataset.from_tensor_slices((tuple(x), y)), None, {})
    assert not supports(model, x, list(y), {})
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        assert not supports(two_input_model(), x, y, {})
    xla = two_input_model()
    xla.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=True)
    assert not supports(xla, x, y, {})  # Model.fit would compile with XLA: not the same
    per_batch = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: None)
    assert not supports(model, x, y, {"callbacks": [per_batch]})  # the loop has no batch hooks
    assert not supports(model, x, y, {"callbacks": [keras.callbacks.TerminateOnNaN()]})
    per_epoch = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: None)
    assert supports(model, x, y, {"callbacks": [per_epoch, keras.callbacks.EarlyStopping()]})


def test_sample_weights_train_as_in_keras_fit(data):
    x, y, xv, yv = data
    weights = np.random.default_rng(3).uniform(0.0, 2.0, len(y)).astype("float32")
    weights[y == 2] = 0.0  # class 2 rows carry no loss
    settings = dict(epochs=3, batch_size=32, shuffle=False, sample_weight=weights)
    reference, fast = two_input_model(), two_input_model()
    want = reference.fit(x, y, verbose=0, **settings).history
    got = fit_in_memory(fast, x, y, **settings).history
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5, atol=1e-6)
    for w_fast, w_ref in zip(fast.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(w_fast, w_ref, rtol=1e-5, atol=1e-6)
    unweighted = two_input_model()
    fit_in_memory(unweighted, x, y, epochs=3, batch_size=32, shuffle=False)
    assert not np.allclose(unweighted.get_weights()[0], fast.get_weights()[0])


def test_the_epoch_is_traced_once_and_the_training_is_unchanged(data):
    # the loss's and metrics' variables are built before tracing: no second trace at epoch 2
    x, y, xv, yv = data
    model, reference = two_input_model(dropout=0.2), two_input_model(dropout=0.2)
    traced = []
    train_step, test_step = model.train_step, model.test_step
    model.train_step = lambda batch: (traced.append("train"), train_step(batch))[1]
    model.test_step = lambda batch: (traced.append("test"), test_step(batch))[1]
    got = fit_in_memory(model, x, y, epochs=3, batch_size=32, validation_data=(xv, yv), seed=4).history
    assert traced == ["train", "test"]
    want = fit_in_memory(reference, x, y, epochs=3, batch_size=32, validation_data=(xv, yv), seed=4).history
    assert got == want  # the same model, seed and rows: the same numbers
    assert got["accuracy"][-1] > 0.5


def test_fit_traces_a_model_once_over_several_fits_and_again_after_compile(data):
    from kfuse.trainers import epoch_loop

    x, y, _, _ = data
    model = two_input_model()
    epoch_loop.fit(model, x, y, epochs=1, batch_size=32)
    function = getattr(model, epoch_loop.EPOCH_FUNCTION_ATTRIBUTE)[2]
    epoch_loop.fit(model, x[:100], y[:100], epochs=2, batch_size=32)  # other rows: same trace
    assert getattr(model, epoch_loop.EPOCH_FUNCTION_ATTRIBUTE)[2] is function and function.traces == 1
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=model.loss)  # a new optimizer
    before = model.get_weights()[0].copy()
    epoch_loop.fit(model, x, y, epochs=1, batch_size=32)
    assert getattr(model, epoch_loop.EPOCH_FUNCTION_ATTRIBUTE)[2] is not function
    assert int(model.optimizer.iterations.numpy()) == 5  # the SGD did the training
    assert not np.allclose(model.get_weights()[0], before)


def test_fit_top_runs_without_graph_rewrites_and_puts_the_setting_back(data):
    """fit_top (a top on cached features) runs its epoch with Grappler off: the same
    training as Model.fit, and TensorFlow's global optimiser setting unchanged after."""
    from kfuse.trainers import epoch_loop

    x, y, xv, yv = data
    settings = dict(epochs=3, batch_size=32, shuffle=False, validation_data=(xv, yv))
    before = tf.config.optimizer.get_experimental_options()
    reference, top = two_input_model(), two_input_model()
    want = reference.fit(x, y, verbose=0, **settings).history
    got = epoch_loop.fit_top(top, x, y, **settings).history
    assert tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False) is \
        before.get("disable_meta_optimizer", False)
    function = getattr(top, epoch_loop.EPOCH_FUNCTION_ATTRIBUTE)[2]
    assert function.graph_rewrites is False
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)
    for w_top, w_ref in zip(top.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(w_top, w_ref, rtol=1e-5, atol=1e-6)
    # a later plain fit of the same model gets a function with the optimiser on
    epoch_loop.fit(top, x, y, epochs=1, batch_size=32, shuffle=False)
    assert getattr(top, epoch_loop.EPOCH_FUNCTION_ATTRIBUTE)[2].graph_rewrites is True
