"""`FusedModel.predict`'s in-memory loop: Keras's `predict`, bit for bit, and its fallbacks."""

import keras
import numpy as np
import pytest
from keras import layers

import kfuse
from kfuse.trainers.predict_loop import predict_in_memory, supports


def bases():
    keras.utils.set_random_seed(0)
    inp = keras.Input((12,), name="signal")
    cnn = keras.Model(inp, layers.Dense(4, activation="softmax")(
        layers.Flatten()(layers.Conv1D(3, 3)(layers.Reshape((12, 1))(inp)))), name="cnn")
    inp2 = keras.Input((12,), name="signal")
    gru = keras.Model(inp2, layers.Dense(4, activation="softmax")(layers.GRU(5)(layers.Reshape((12, 1))(inp2))),
                      name="gru")
    return cnn, gru


def fused_model():
    cnn, gru = bases()
    branches = [kfuse.Branch(m, name=m.name, inputs="signal", trainable=False, output="probabilities")
                for m in (cnn, gru)]
    return kfuse.stack(branches, fusion="concat", meta=(8,), head=4), (cnn, gru)


@pytest.mark.parametrize("batch_size", [None, 7, 64, 1000])
def test_fused_predict_equals_keras_predict_and_the_plain_forward_pass(batch_size):
    model, (cnn, gru) = fused_model()
    x = np.random.default_rng(1).normal(size=(100, 12))  # float64: cast to float32 as Keras does
    out = model.predict(x, batch_size=batch_size, verbose=0)
    assert supports(model, model.as_inputs(x), {"batch_size": batch_size, "verbose": 0})
    keras_out = keras.Model.predict(model, {"signal": x}, batch_size=batch_size, verbose=0)
    assert out.dtype == keras_out.dtype and out.shape == (100, 4)
    np.testing.assert_array_equal(out, keras_out)  # same batches, same graph: bit for bit
    plain = keras.ops.convert_to_numpy(model({"signal": x.astype("float32")}, training=False))
    assert np.allclose(out, plain, atol=1e-6)
    # the plain Keras forward pass of the bases under the head, in numpy
    probs = np.concatenate([c.predict(x, verbose=0) for c in (cnn, gru)], axis=-1)
    (w1, b1), (w2, b2) = (model.get_layer(n).get_weights() for n in ("meta_dense_0", "logits"))
    assert np.allclose(np.maximum(probs @ w1 + b1, 0) @ w2 + b2, out, atol=1e-5)


def test_weights_changed_after_a_predict_are_seen_by_the_next():
    model, _ = fused_model()
    x = np.random.default_rng(2).normal(size=(20, 12)).astype("float32")
    before = model.predict(x, verbose=0)
    logits = model.get_layer("logits")
    kernel, bias = logits.get_weights()
    logits.set_weights([kernel * 2, bias + 1])
    after = model.predict(x, verbose=0)
    assert not np.allclose(before, after)
    np.testing.assert_array_equal(after, keras.Model.predict(model, {"signal": x}, verbose=0))


def test_callbacks_progress_and_positional_batch_size():
    model, _ = fused_model()
    x = np.random.default_rng(3).normal(size=(50, 12)).astype("float32")

    class Count(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_predict_batch_end(self, batch, logs=None):
            self.seen.append((batch, tuple(np.shape(logs["outputs"]))))

    count = Count()
    out = model.predict(x, 16, 0, callbacks=[count])  # Keras's positional order: batch_size, verbose
    assert count.seen == [(0, (16, 4)), (1, (16, 4)), (2, (16, 4)), (3, (2, 4))]
    np.testing.assert_array_equal(out, keras.Model.predict(model, {"signal": x}, batch_size=16, verbose=0))


def test_what_the_loop_leaves_to_keras():
    model, _ = fused_model()
    x = np.random.default_rng(4).normal(size=(30, 12)).astype("float32")
    arrays = model.as_inputs(x)
    assert supports(model, arrays, {"batch_size": 8})
    assert not supports(model, arrays, {"steps": 2})  # steps: Keras's loop
    assert not supports(model, {"signal": list(x)}, {})  # not numpy
    assert not supports(model, {"signal": x[:0]}, {})  # no rows
    # steps and a tf.data.Dataset still work, through Keras
    np.testing.assert_array_equal(model.predict(x, batch_size=10, steps=2, verbose=0).shape, (20, 4))
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices({"signal": x}).batch(8)
    np.testing.assert_allclose(model.predict(ds, verbose=0), model.predict(x, batch_size=8, verbose=0), atol=1e-6)


def test_multi_input_multi_output_model_and_xla():
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    h = layers.Concatenate()([layers.Dense(4)(a), b])
    model = keras.Model({"a": a, "b": b}, {"y": layers.Dense(2, name="y")(h), "z": layers.Dense(1, name="z")(h)})
    rng = np.random.default_rng(5)
    x = {"b": rng.normal(size=(40, 2)).astype("float32"), "a": rng.normal(size=(40, 3)).astype("float32")}
    assert supports(model, x, {})
    out = predict_in_memory(model, x, batch_size=16, verbose=0)
    want = model.predict(x, batch_size=16, verbose=0)
    assert set(out) == {"y", "z"}
    for k in out:
        np.testing.assert_array_equal(out[k], want[k])
    model.compile(jit_compile=True)
    xla = predict_in_memory(model, x, batch_size=16, verbose=0)
    for k in out:
        np.testing.assert_allclose(xla[k], want[k], atol=1e-5)


def test_branch_outputs_match_each_base():
    model, (cnn, gru) = fused_model()
    x = np.random.default_rng(6).normal(size=(33, 12)).astype("float32")
    values = model.branch_outputs(x, batch_size=10)
    np.testing.assert_allclose(values["cnn"], cnn.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(values["gru"], gru.predict(x, verbose=0), atol=1e-6)


def test_a_dropped_model_frees_its_traced_predict():
    # the cache is keyed weakly by model and its traced function holds only a weak reference
    # back: a model nobody holds any more leaves the cache (no graph kept alive per model)
    import gc

    from kfuse.trainers import predict_loop

    gc.collect()  # earlier tests' models (and the probes their branch_outputs keep) go first
    before = len(predict_loop._FUNCTIONS)
    for _ in range(3):
        inp = keras.Input((4,))
        model = keras.Model(inp, layers.Dense(2)(layers.Dense(3)(inp)))
        predict_in_memory(model, np.ones((5, 4), "float32"), verbose=0)
        assert len(predict_loop._FUNCTIONS) == before + 1
        del model
        gc.collect()
        assert len(predict_loop._FUNCTIONS) == before


def test_branch_outputs_reuse_one_traced_probe_and_see_new_weights():
    # fit_head / branch_outputs called again (a second fit_head, a tuning trial) reuse the
    # probe model and its traced forward pass instead of tracing the branches anew
    import gc

    from kfuse.models import fused as kmodel
    from kfuse.trainers import predict_loop

    model, (cnn, _) = fused_model()
    x = np.random.default_rng(7).normal(size=(9, 12)).astype("float32")
    model.branch_outputs(x)
    traced = len(predict_loop._FUNCTIONS)
    branch = model.get_layer("cnn")
    branch.set_weights([w * 2 for w in branch.get_weights()])
    values = model.branch_outputs(x)
    assert len(predict_loop._FUNCTIONS) == traced
    np.testing.assert_allclose(values["cnn"], branch.predict(x, verbose=0), atol=1e-6)
    assert not np.allclose(values["cnn"], cnn.predict(x, verbose=0), atol=1e-3)
    probes = len(kmodel._PROBES)
    del model, branch
    gc.collect()
    assert len(kmodel._PROBES) == probes - 1  # a dropped model frees its probe
