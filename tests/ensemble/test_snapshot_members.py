"""A snapshot ensemble's graph is built on its snapshots' own layers (one copy per snapshot,
not two), and `estimators_` are standalone, trainable copies made when first read.
`Branch(copy=False)`, which it uses, builds on the base's own layers."""

import keras
import numpy as np
import pytest

import kfuse
from kfuse.ensemble import FastGeometricEnsemble, SnapshotEnsemble

X = np.random.default_rng(4).normal(size=(48, 5)).astype("float32")
Y = (X[:, 0] + X[:, 2] > 0).astype("int64")


def net():
    inp = keras.Input((5,))
    frozen = keras.layers.Dense(6, activation="relu", name="kept_frozen")
    frozen.trainable = False  # a layer the builder froze stays frozen in every copy
    out = keras.layers.Dense(2, name="out")(frozen(inp))
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.mark.parametrize("make", [
    lambda: SnapshotEnsemble(net, n_estimators=2, epochs=2, batch_size=16, random_state=0),
    lambda: FastGeometricEnsemble(net, n_estimators=2, warmup_epochs=1, cycle=2, batch_size=16, random_state=0),
], ids=["snapshot", "fge"])
def test_graph_holds_the_snapshots_and_estimators_are_trainable_copies(make):
    fitted = make().fit(X, Y)
    assert "_estimators" in vars(fitted) and vars(fitted)["_estimators"] is None  # none made yet
    members = [fitted.model_.get_layer(f"member_{i}") for i in range(2)]
    assert all(not m.trainable and not m.trainable_weights for m in members)
    estimators = fitted.estimators_
    assert fitted.estimators_ is estimators  # made once
    for member, estimator in zip(members, estimators, strict=True):
        assert {id(v) for v in estimator.weights}.isdisjoint(id(v) for v in member.weights)
        for a, b in zip(estimator.get_weights(), member.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        assert [w.name for w in estimator.trainable_weights] == ["kernel", "bias"]  # "out" only
        assert not estimator.get_layer("kept_frozen").trainable
    mean = np.mean([keras.ops.softmax(e.predict(X, verbose=0)) for e in estimators], axis=0)
    np.testing.assert_allclose(fitted.predict_proba(X), mean, atol=1e-6)
    # training a copy leaves the graph as it was
    before = fitted.model_.predict(X, verbose=0)
    estimators[0].compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    estimators[0].fit(X, Y, epochs=1, verbose=0)
    np.testing.assert_array_equal(fitted.model_.predict(X, verbose=0), before)


def test_estimators_before_fit_is_an_attribute_error():
    snap = SnapshotEnsemble(net)
    assert not hasattr(snap, "estimators_")
    with pytest.raises(AttributeError, match="SnapshotEnsemble has no estimators_ before it is fitted"):
        _ = snap.estimators_


def test_branch_without_copy_builds_on_the_base_layers():
    base = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, name="d")])
    fused = kfuse.stack([kfuse.Branch(base, name="b", trainable=False, copy=False)], head=2)
    assert fused.get_layer("b").get_layer("d") is base.get_layer("d")  # no copy
    assert not base.get_layer("d").trainable  # frozen with the branch, as documented
    copied = kfuse.stack([kfuse.Branch(keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)]), name="c",
                                       trainable=False)], head=2)
    assert copied.get_layer("c").layers[-1].trainable is False
    with pytest.raises(ValueError, match="Branch 'f': copy=False builds on a base model's own layers; "
                                         "a callable branch builds a new network: leave copy=True"):
        kfuse.Branch(lambda t: keras.layers.Dense(2)(t), name="f", inputs={"x": (5,)}, copy=False)
    with pytest.raises(ValueError, match="lora_rank= adds adapters to a copy: leave copy=True"):
        kfuse.Branch(base, name="l", copy=False, lora_rank=2)
