"""stack(): one functional graph; late, hybrid and early fusion; heads; bad input."""

import keras
import numpy as np
import pytest
from keras import layers

import kfuse
from tests.helpers import assert_round_trip


def classifier(width=12, classes=3, name="base"):
    inp = keras.Input((width,), name="signal")
    x = layers.Dense(16, activation="relu", name="hidden")(inp)
    return keras.Model(inp, layers.Dense(classes, activation="softmax", name="out")(x), name=name)


def blobs(n=300, width=12, classes=3, seed=0):
    """A learnable task: class means differ in the first features."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(size=(n, width)).astype("float32")
    x[np.arange(n), y] += 2.5
    return x, y


def test_late_fusion_returns_one_functional_model_that_learns(tmp_path):
    x, y = blobs()
    branches = [
        kfuse.Branch(classifier(name="one"), name="one", inputs="signal", trainable=False, output="logits"),
        kfuse.Branch(lambda t: layers.Dense(8, activation="relu")(t), name="mlp", inputs="signal"),
    ]
    model = kfuse.stack(
        branches, fusion="concat", meta=(16,), head=3, meta_dropout=0.1, optimizer=keras.optimizers.Adam(0.01)
    )
    assert isinstance(model, keras.Model) and isinstance(model, kfuse.FusedModel)
    assert model.branch_names == ["one", "mlp"]
    assert [layer.name for layer in model.layers][:3] == ["signal", "one", "mlp"]
    history = model.fit(x[:200], y[:200], epochs=15, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    acc = model.evaluate(x[200:], y[200:], verbose=0, return_dict=True)["accuracy"]
    assert acc > 0.85, acc
    # dict and bare array give the same answer; reload gives identical predictions
    np.testing.assert_allclose(model.predict({"signal": x}, verbose=0), model.predict(x, verbose=0))
    loaded = assert_round_trip(model, x, tmp_path, atol=0)
    assert isinstance(loaded, kfuse.FusedModel) and loaded.branch_names == ["one", "mlp"]
    assert loaded.head.num_classes == 3


def test_hybrid_fusion_of_tapped_features_with_passthrough(tmp_path):
    x, y = blobs()
    base = classifier()
    model = kfuse.stack(
        [
            kfuse.Branch(base, name="feat", inputs="signal", tap="hidden", trainable=False),
            kfuse.Branch(base, name="probs", inputs="signal", output="probabilities"),
        ],
        fusion=kfuse.layers.Concat(units=8, normalize=True),
        head=3,
        passthrough=True,
    )
    assert model.get_layer("passthrough").output.shape == (None, 16 + 12)
    model.fit(x, y, epochs=2, verbose=0)
    assert_round_trip(model, x, tmp_path)


def test_early_fusion_concatenates_raw_inputs_into_one_network(tmp_path):
    rng = np.random.default_rng(0)
    image, tab = rng.normal(size=(200, 4, 4)).astype("float32"), rng.normal(size=(200, 3)).astype("float32")
    y = (image[:, 0, 0] + tab[:, 0] > 0).astype("int64")
    model = kfuse.early_fusion(
        lambda t: layers.Dense(16, activation="relu")(t), inputs={"image": (4, 4), "tab": (3,)}, head=kfuse.layers.heads.Binary()
    )
    assert model.get_layer("early").get_layer("early_concat").output.shape == (None, 19)
    model.fit({"image": image, "tab": tab}, y, epochs=30, verbose=0)
    assert model.evaluate({"image": image, "tab": tab}, y, verbose=0, return_dict=True)["accuracy"] > 0.9
    assert_round_trip(model, {"image": image, "tab": tab}, tmp_path)


def test_weighted_average_and_vote_over_probabilities(tmp_path):
    x, _ = blobs()
    branches = lambda: [  # noqa: E731
        kfuse.Branch(classifier(name="a"), name="a", inputs="signal", output="probabilities"),
        kfuse.Branch(classifier(name="b"), name="b", inputs="signal", output="probabilities"),
    ]
    avg = kfuse.stack(branches(), fusion=kfuse.layers.WeightedAverage(weights=[1, 3], learnable=False))
    outs = avg.branch_outputs(x)
    np.testing.assert_allclose(avg.predict(x, verbose=0), 0.25 * outs["a"] + 0.75 * outs["b"], atol=1e-6)
    vote = kfuse.stack(branches(), fusion="hard_vote")
    votes = vote.predict(x, verbose=0)
    assert set(np.unique(np.round(votes, 5))) <= {0.0, 0.5, 1.0}
    assert_round_trip(vote, x, tmp_path)


@pytest.mark.parametrize(
    "head, y, loss_name",
    [
        (kfuse.layers.heads.Binary(), np.array([0, 1] * 10), "binary_crossentropy"),
        (kfuse.layers.heads.MultiLabel(4), (np.random.default_rng(0).random((20, 4)) > 0.5).astype("float32"), "binary_crossentropy"),
        (kfuse.layers.heads.Regression(2), np.random.default_rng(0).normal(size=(20, 2)), "mean_squared_error"),
    ],
)
def test_heads_train_and_state_their_activation(head, y, loss_name):
    x = np.random.default_rng(0).normal(size=(20, 12)).astype("float32")
    model = kfuse.stack([kfuse.Branch(classifier(), name="b", inputs="signal")], fusion=None, head=head)
    assert model.loss.name == loss_name
    model.fit(x, y, epochs=1, verbose=0)
    out = model.predict(x, verbose=0)
    assert out.shape[0] == 20
    if head.activation is not None:
        probs = model.predict_proba(x, verbose=0)
        assert probs.min() >= 0 and probs.max() <= 1


def test_classification_head_is_logits_with_from_logits_loss():
    model = kfuse.stack([kfuse.Branch(classifier(), name="b", inputs="signal")], fusion=None, head=3)
    assert model.top.layers[-1].name == "logits" and model.layers[-1] is model.top
    assert model.loss.get_config()["from_logits"] is True
    probs = model.predict_proba(blobs()[0], verbose=0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


# -- bad input: clear errors at stack() time ------------------------------------------
def test_empty_branch_list():
    with pytest.raises(ValueError, match="non-empty list of kfuse.Branch"):
        kfuse.stack([])


def test_duplicate_branch_names():
    base = classifier()
    with pytest.raises(ValueError, match=r"Duplicate branch name 'x' \(branches #0 and #1\)"):
        kfuse.stack([kfuse.Branch(base, name="x", inputs="signal"), kfuse.Branch(base, name="x", inputs="signal")])


def test_same_input_with_different_shapes_or_dtypes():
    with pytest.raises(ValueError, match=r"Input 'signal' has shape \(8,\) for branch 'small' but \(12,\) for branch 'big'"):
        kfuse.stack(
            [
                kfuse.Branch(classifier(12), name="big", inputs="signal"),
                kfuse.Branch(classifier(8), name="small", inputs="signal"),
            ]
        )
    ints = keras.Model(i := keras.Input((12,), dtype="int32"), layers.Dense(3)(layers.Lambda(lambda t: keras.ops.cast(t, "float32"))(i)))
    with pytest.raises(ValueError, match=r"Input 'signal' has dtype int32 for branch 'ints' but float32 for branch 'floats'"):
        kfuse.stack(
            [
                kfuse.Branch(classifier(12), name="floats", inputs="signal"),
                kfuse.Branch(ints, name="ints", inputs="signal"),
            ]
        )


def test_average_over_different_widths_names_branches_and_shapes():
    with pytest.raises(ValueError, match=r"branch 'wide' outputs \(5,\) while branch 'narrow' outputs \(3,\)"):
        kfuse.stack(
            [
                kfuse.Branch(classifier(classes=3), name="narrow", inputs="signal"),
                kfuse.Branch(classifier(classes=5), name="wide", inputs="signal"),
            ],
            fusion="average",
        )
    with pytest.raises(ValueError, match="same shape"):
        kfuse.stack(
            [
                kfuse.Branch(classifier(classes=3), name="narrow", inputs="signal"),
                kfuse.Branch(classifier(classes=5), name="wide", inputs="signal"),
            ],
            fusion="soft_vote",
        )


def test_unknown_fusion_name():
    with pytest.raises(ValueError, match=r"Unknown fusion 'avg'. Valid names: \["):
        kfuse.stack([kfuse.Branch(classifier(), name="b", inputs="signal")], fusion="avg")


def test_fresh_branch_without_a_known_input_shape():
    with pytest.raises(ValueError, match=r"Input 'signal' \(read by branch\(es\) \['fresh'\]\) has no known shape"):
        kfuse.stack([kfuse.Branch(lambda t: layers.Dense(2)(t), name="fresh", inputs="signal")])
    model = kfuse.stack(
        [kfuse.Branch(lambda t: layers.Dense(2)(t), name="fresh", inputs={"signal": (6,)})], fusion=None, head=2
    )
    assert model.input_shape == {"signal": (None, 6)} or model.inputs[0].shape == (None, 6)


def test_labels_that_do_not_fit_the_head_get_a_helpful_message():
    x, y = blobs(60)
    model = kfuse.stack([kfuse.Branch(classifier(), name="b", inputs="signal")], fusion=None, head=3)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\); received labels from 1 to 7"):
        model.fit(x, y * 3 + 1, verbose=0)
    with pytest.raises(ValueError, match="look one-hot"):
        model.fit(x, np.eye(3)[y], verbose=0)
    reg = kfuse.stack([kfuse.Branch(classifier(), name="b", inputs="signal")], fusion=None, head=kfuse.layers.heads.Regression(2))
    with pytest.raises(ValueError, match=r"targets of shape \(batch, 2\); received shape \(60,\)"):
        reg.fit(x, y.astype("float32"), verbose=0)


def test_fusion_none_with_several_branches_and_reused_fusion_layer():
    base = classifier()
    two = lambda: [kfuse.Branch(base, name="a", inputs="signal"), kfuse.Branch(base, name="b", inputs="signal")]  # noqa: E731
    with pytest.raises(ValueError, match="fusion=None works for one branch only"):
        kfuse.stack(two(), fusion=None)
    layer = kfuse.layers.Average()
    kfuse.stack(two(), fusion=layer)
    with pytest.raises(ValueError, match="already part of another model"):
        kfuse.stack(two(), fusion=layer)


def test_fit_head_trains_the_top_on_cached_outputs_like_fit_does(tmp_path):
    x, y = blobs(200)
    base = classifier()
    base.compile("adam", "sparse_categorical_crossentropy")
    base.fit(x, y, epochs=3, verbose=0)

    def fused():
        keras.utils.set_random_seed(1)
        return kfuse.stack(
            [kfuse.Branch(base, name="b", inputs="signal", trainable=False, output="probabilities")],
            fusion=None, meta=(8,), head=3, passthrough=True, optimizer=keras.optimizers.SGD(0.05),
        )

    through_graph, cached = fused(), fused()
    through_graph.fit(x, y, epochs=3, batch_size=50, shuffle=False, verbose=0)
    history = cached.fit_head(x, y, epochs=3, batch_size=50, shuffle=False, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    # same data, order and optimizer: the two routes give the same model
    np.testing.assert_allclose(cached.predict(x, verbose=0), through_graph.predict(x, verbose=0), atol=1e-4)
    # cutting the top out (passthrough: an input of the model is an input of the top too)
    # leaves the model as it was: it saves and reloads, and fit_head runs again
    assert_round_trip(cached, x, tmp_path, atol=0)
    cached.fit_head(x, y, epochs=1, batch_size=50, verbose=0)
    unfrozen = kfuse.stack([kfuse.Branch(base, name="b", inputs="signal")], fusion=None, head=3)
    with pytest.raises(ValueError, match=r"every branch must be frozen; branches \['b'\] are trainable"):
        unfrozen.fit_head(x, y)
