"""Bases with several outputs (`select=` / `output=<name>`), unbuilt and subclassed bases
(`inputs={name: shape}`), and auto-named inputs renamed so export never meets one."""

import keras
import numpy as np
import pytest

import kfuse
from tests.conftest import requires_tensorflow

X = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")


def two_headed(dict_outputs=False):
    inp = keras.Input((5,), name="x")
    h = keras.layers.Dense(4, activation="relu", name="hidden")(inp)
    cls = keras.layers.Dense(3, activation="softmax", name="cls")(h)
    reg = keras.layers.Dense(1, name="reg")(h)
    outputs = {"label": cls, "value": reg} if dict_outputs else [cls, reg]
    return keras.Model(inp, outputs, name="two_headed")


def test_a_multi_output_base_without_a_choice_is_refused_listing_its_outputs():
    with pytest.raises(
        ValueError, match=r"2 outputs \(#0 'cls' \(None, 3\), #1 'reg' \(None, 1\)\)"
    ):
        kfuse.Branch(two_headed(), name="b")
    with pytest.raises(ValueError, match="select="):
        kfuse.Branch(two_headed(), name="b", output="probabilities")
    with pytest.raises(ValueError, match=r"no output 'clss' \(closest: \['cls'\]\)"):
        kfuse.Branch(two_headed(), name="b", select="clss")
    with pytest.raises(ValueError, match="out of range"):
        kfuse.Branch(two_headed(), name="b", select=2)


@pytest.mark.parametrize("dict_outputs", [False, True])
def test_select_one_output_by_name_or_index(dict_outputs):
    base = two_headed(dict_outputs)
    cls, reg = (lambda o: (o["label"], o["value"]) if dict_outputs else o)(
        base.predict(X, verbose=0)
    )
    name = "label" if dict_outputs else "cls"
    for branch in (
        kfuse.Branch(base, name="b", select=name),
        kfuse.Branch(base, name="b", output=name),  # output=<an output name>: the same
        kfuse.Branch(base, name="b", select=0),
        kfuse.Branch(base, name="b", output=0),
    ):
        model = kfuse.stack([branch], fusion=None)
        np.testing.assert_allclose(model.predict(X, verbose=0), cls, atol=1e-6)
    reg_branch = kfuse.Branch(base, name="b", select=-1)
    np.testing.assert_allclose(
        kfuse.stack([reg_branch], fusion=None).predict(X, verbose=0), reg, atol=1e-6
    )


def test_select_several_outputs_concatenated_and_converted():
    base = two_headed()
    cls, reg = base.predict(X, verbose=0)
    model = kfuse.stack([kfuse.Branch(base, name="b", select=["cls", "reg"])], fusion=None)
    np.testing.assert_allclose(
        model.predict(X, verbose=0), np.concatenate([cls, reg], -1), atol=1e-6
    )
    # logits of the softmax output: exact (the clone's Dense made linear), the user's base unchanged
    logits = kfuse.stack([kfuse.Branch(base, name="b", select="cls", output="logits")], fusion=None)
    z = logits.predict(X, verbose=0)
    e = np.exp(z - z.max(-1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(-1, keepdims=True), cls, atol=1e-5)
    np.testing.assert_allclose(base.predict(X, verbose=0)[0], cls, atol=1e-6)
    # probabilities of both: softmax output as is, the linear one squashed by a sigmoid
    both = kfuse.stack(
        [kfuse.Branch(base, name="b", select=[0, 1], output="probabilities")], fusion=None
    )
    np.testing.assert_allclose(
        both.predict(X, verbose=0), np.concatenate([cls, 1 / (1 + np.exp(-reg))], -1), atol=1e-5
    )


class TwoLayerNet(keras.Model):
    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = keras.layers.Dense(4, activation="relu")
        self.out = keras.layers.Dense(units)

    def call(self, x):
        return self.out(self.hidden(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_subclassed_base_through_declared_inputs():
    net = TwoLayerNet()
    expected = net.predict(X, verbose=0)  # built by a call on data, so it has weights
    with pytest.raises(ValueError, match=r"inputs=\{'x': \(40,\)\}"):
        kfuse.Branch(net, name="sub")
    branch = kfuse.Branch(net, name="sub", inputs={"x": (5,)})
    assert branch.input_names == ["x"]
    model = kfuse.stack([branch], fusion=None)
    np.testing.assert_allclose(model.predict(X, verbose=0), expected, atol=1e-6)


@requires_tensorflow()
def test_unbuilt_sequential_and_auto_named_inputs(tmp_path):
    unbuilt = keras.Sequential([keras.layers.Dense(3)])
    branch = kfuse.Branch(unbuilt, name="seq", inputs={"signal": (5,)})
    assert branch.input_names == ["signal"]
    called = keras.Sequential([keras.layers.Dense(3)])
    expected = called.predict(X, verbose=0)  # now built, its input auto-named keras_tensor_N
    assert called.inputs[0].name.startswith("keras_tensor")
    auto = kfuse.Branch(called, name="mlp")
    assert auto.input_names == ["mlp_input"]
    model = kfuse.stack(
        [auto, kfuse.Branch(unbuilt, name="seq", inputs={"mlp_input": (5,)})], fusion="concat"
    )
    np.testing.assert_allclose(model.predict(X, verbose=0)[:, :3], expected, atol=1e-6)
    path = kfuse.export.export_saved_model(model, str(tmp_path / "m"))
    assert list(kfuse.export.inspect(path)["1"]["serving_default"]["inputs"]) == ["mlp_input"]


def test_stacker_trains_the_selected_output_of_a_multi_output_base():
    y = (X[:, 0] > 0).astype("int64")
    x = np.concatenate([X] * 4)
    y = np.concatenate([y] * 4)
    trained = kfuse.Branch(two_headed(), name="t", select="cls", fit={"epochs": 1})
    frozen = kfuse.Branch(two_headed(), name="f", select="cls", trainable=False)
    stacker = kfuse.Stacker([trained, frozen], head=3, cv=2, verbose=0, meta_fit={"epochs": 1}).fit(
        {"x": x}, y
    )
    assert stacker.oof_predictions_["t"].shape == (len(y), 3)
    assert stacker.predict_proba({"x": x}).shape == (len(y), 3)
