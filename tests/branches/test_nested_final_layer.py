"""A model whose output a nested model produces (a `kfuse.FusedModel`'s `top`): kfuse reads
the nested model's final layer, so fused models can be ensemble members, and never changes
a layer inside the nested model."""

import keras
import numpy as np
import pytest

import kfuse
from kfuse.branches.outputs import final_layer
from kfuse.ensemble import BaggingClassifier


def _fused():
    x = keras.Input((4,), name="x")
    return kfuse.stack([kfuse.Branch(keras.Model(x, keras.layers.Dense(3)(x)), name="b")], head=2)


def test_bagging_of_fused_models_averages_their_softmax_probabilities():
    x = np.random.default_rng(0).normal(size=(12, 4)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    assert final_layer(_fused()).name == "logits"  # the top's head (None before)
    bag = BaggingClassifier(_fused, n_estimators=2, fit_params={"epochs": 1}, random_state=0).fit(
        x, y
    )
    members = [m.predict_proba(x, verbose=0) for m in bag.estimators_]
    np.testing.assert_allclose(bag.predict_proba(x), np.mean(members, axis=0), atol=1e-6)


def test_logits_from_a_softmax_inside_a_nested_model_are_refused_naming_it():
    x = keras.Input((4,), name="x")
    head = keras.layers.Dense(3, activation="softmax", name="head")
    inner = keras.Sequential([keras.Input((4,)), head], name="inner")
    outer = keras.Model(x, inner(x), name="outer")
    with pytest.raises(
        ValueError,
        match=r"Branch 'o'.*softmax \(layer 'head' of a nested model.*output='probabilities'",
    ):
        kfuse.stack([kfuse.Branch(outer, name="o", output="logits")], head=2)
    assert head.activation is keras.activations.softmax  # untouched
