"""Branch: bases as models, files and callables; naming, freezing, taps, outputs."""

import keras
import numpy as np
import pytest
from keras import layers

import kfuse


def small_classifier(name="base", softmax=True, batchnorm=False):
    inp = keras.Input((12,), name="signal")
    x = layers.Dense(16, activation="relu", name="hidden")(inp)
    if batchnorm:
        x = layers.BatchNormalization(name="bn")(x)
    out = layers.Dense(4, activation="softmax" if softmax else None, name="out")(x)
    return keras.Model(inp, out, name=name)


def data(n=32, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 12)).astype("float32")


def test_two_copies_of_one_backbone_get_their_own_prefixed_weights():
    base = small_classifier()
    model = kfuse.stack(
        [kfuse.Branch(base, name="a", inputs="signal"), kfuse.Branch(base, name="b", inputs="signal")],
        fusion="average",
    )
    paths = [w.path for w in model.weights]
    assert len(paths) == 8
    assert all(p.startswith(("a/", "b/")) for p in paths), paths
    assert model.get_layer("a").get_layer("hidden") is not model.get_layer("b").get_layer("hidden")
    # the branches start as copies of the base, and the user's base is untouched
    np.testing.assert_allclose(model.predict(data(), verbose=0), base.predict(data(), verbose=0), atol=1e-6)
    assert base.trainable and all(w.trainable for w in base.weights if "kernel" in w.path)


def test_loaded_from_keras_file(tmp_path):
    base = small_classifier()
    path = tmp_path / "base.keras"
    base.save(path)
    branch = kfuse.Branch(str(path), name="fromfile", inputs="signal")
    assert branch.source == str(path)
    model = kfuse.stack([branch], fusion=None)
    np.testing.assert_allclose(model.predict(data(), verbose=0), base.predict(data(), verbose=0), atol=1e-6)


def test_missing_and_non_keras_files(tmp_path):
    with pytest.raises(ValueError, match=r"Branch 'x': no such file .*nope\.keras"):
        kfuse.Branch(str(tmp_path / "nope.keras"), name="x")
    bogus = tmp_path / "bogus.keras"
    bogus.write_text("not a zip")
    with pytest.raises(ValueError, match="is not a Keras v3 '.keras' file"):
        kfuse.Branch(str(bogus), name="x")


def test_frozen_branch_keeps_weights_and_runs_batchnorm_in_inference_mode():
    base = small_classifier(batchnorm=True)
    x = data(64)
    frozen = kfuse.Branch(base, name="frozen", inputs="signal", trainable=False)
    fresh = kfuse.Branch(lambda t: layers.Dense(8)(t), name="fresh", inputs="signal")
    model = kfuse.stack([frozen, fresh], fusion="concat", head=4)
    sub = model.get_layer("frozen")
    before = [w.numpy().copy() for w in sub.weights]
    model.fit(x, np.arange(64) % 4, epochs=2, verbose=0)
    after = [w.numpy() for w in sub.weights]
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(b, a)  # includes BN moving statistics
    assert len(model.trainable_weights) == 4  # the fresh Dense and the head, nothing frozen
    assert not any(w.path.startswith("frozen/") for w in model.trainable_weights)
    # inference-mode BN: training=True gives the same output as training=False
    out_train = model.branch_outputs(x)["frozen"]
    probe = sub([x], training=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(probe), out_train, atol=1e-5)


def test_tap_uses_an_intermediate_layer_and_lists_close_names():
    base = small_classifier()
    branch = kfuse.Branch(base, name="feat", inputs="signal", tap="hidden")
    assert branch.output_kind == "features"
    model = kfuse.stack([branch], fusion=None, head=3)
    assert model.branch_outputs(data())["feat"].shape == (32, 16)
    with pytest.raises(ValueError, match=r"tap='hiden' names no layer of the base. Closest: \['hidden'\]"):
        kfuse.Branch(base, name="feat", inputs="signal", tap="hiden")


def test_logits_are_recovered_exactly_from_a_softmax_dense():
    base = small_classifier(softmax=True)
    model = kfuse.stack([kfuse.Branch(base, name="b", inputs="signal", output="logits")], fusion=None)
    logits = model.predict(data(), verbose=0)
    probs = base.predict(data(), verbose=0)
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(softmax, probs, atol=1e-6)
    assert base.get_layer("out").activation.__name__ == "softmax"  # the user's model untouched


def test_logits_from_a_separate_softmax_layer_and_probabilities_from_logits():
    inp = keras.Input((12,), name="signal")
    logits = layers.Dense(4, name="dense")(inp)
    base = keras.Model(inp, layers.Softmax(name="sm")(logits))
    model = kfuse.stack([kfuse.Branch(base, name="b", inputs="signal", output="logits")], fusion=None)
    expected = keras.Model(inp, logits).predict(data(), verbose=0)
    np.testing.assert_allclose(model.predict(data(), verbose=0), expected, atol=1e-6)

    linear = small_classifier(softmax=False)
    model = kfuse.stack([kfuse.Branch(linear, name="p", inputs="signal", output="probabilities")], fusion=None)
    np.testing.assert_allclose(model.predict(data(), verbose=0).sum(-1), 1.0, atol=1e-5)


def test_unknown_final_activation_is_refused():
    inp = keras.Input((12,), name="signal")
    base = keras.Model(inp, layers.Dense(4, activation="relu")(inp))
    with pytest.raises(ValueError, match="ends in activation 'relu'"):
        kfuse.stack([kfuse.Branch(base, name="r", inputs="signal", output="logits")], fusion=None)


def test_multi_input_base_and_shared_inputs():
    a, b = keras.Input((5,), name="a"), keras.Input((3,), name="b")
    joint = keras.Model([a, b], layers.Dense(2)(layers.Concatenate()([a, b])))
    model = kfuse.stack(
        [
            kfuse.Branch(joint, name="joint", inputs=["image", "tabular"]),
            kfuse.Branch(lambda t: layers.Dense(2)(t), name="tab", inputs="tabular"),
        ],
        fusion="concat",
        head=kfuse.layers.heads.Regression(1),
    )
    assert sorted(model.input_names) == ["image", "tabular"]
    out = model.predict({"image": np.zeros((3, 5)), "tabular": np.zeros((3, 3))}, verbose=0)
    assert out.shape == (3, 1)
    with pytest.raises(ValueError, match=r"lacks \['tabular'\]"):
        model.predict({"image": np.zeros((3, 5))}, verbose=0)


def test_branch_argument_errors():
    with pytest.raises(TypeError, match="must be a keras.Model, a path"):
        kfuse.Branch(42, name="x")
    with pytest.raises(ValueError, match="needs `inputs=`"):
        kfuse.Branch(lambda t: t, name="x")
    with pytest.raises(ValueError, match="output="):
        kfuse.Branch(lambda t: t, name="x", inputs="s", output="logits")
    base = small_classifier()
    with pytest.raises(ValueError, match=r"input 'signal' is declared with shape \(7,\) but the base expects \(12,\)"):
        kfuse.Branch(base, name="x", inputs={"signal": (7,)})
    with pytest.raises(ValueError, match=r"takes 1 input\(s\)"):
        kfuse.Branch(base, name="x", inputs=["a", "b"])


def test_a_frozen_build_of_a_callable_keeps_each_inputs_own_shape():
    """`Branch.built_frozen`: a copy of the checked branch over its built model. Inputs
    named out of sorted order keep their own shapes (the built model lists its inputs
    sorted), and the fused graph computes what the built model does."""

    def two(t):
        return layers.Dense(3, name="out")(layers.Concatenate()([t["wide"], t["narrow"]]))

    branch = kfuse.Branch(two, name="two", inputs=["wide", "narrow"], trainable=False, fit={"epochs": 2})
    keras.utils.set_random_seed(0)
    frozen = branch.built_frozen({"wide": (5,), "narrow": (2,)})
    assert (frozen.name, frozen.input_names, frozen.trainable, frozen.is_fresh) == ("two", ["wide", "narrow"], False, False)
    assert frozen.input_shapes == {"wide": (5,), "narrow": (2,)}
    assert frozen.input_dtypes == {"wide": "float32", "narrow": "float32"}
    assert frozen.fit_settings == {} and frozen.base is not branch.base
    assert branch.is_fresh and branch.fit_settings == {"epochs": 2}  # the branch itself is unchanged
    rng = np.random.default_rng(0)
    x = {"wide": rng.normal(size=(6, 5)).astype("float32"), "narrow": rng.normal(size=(6, 2)).astype("float32")}
    model = kfuse.stack([frozen], head=2)
    own = frozen.base.predict(x, verbose=0)
    np.testing.assert_allclose(model.branch_outputs(x)["two"], own, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="'two'.*a model"):
        frozen.built_frozen({"wide": (5,), "narrow": (2,)})
