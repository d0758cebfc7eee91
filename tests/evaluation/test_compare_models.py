"""compare() on real Keras models, kfuse fused models, a Stacker, dicts and tf.data."""

import keras
import numpy as np
import pytest

import kfuse
from tests.conftest import requires_tensorflow


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
    return x, y


def _fit(model, x, y, passes, batch_size=64):
    """`passes` epochs' worth of steps in ONE epoch (Keras's per-epoch overhead dominates here)."""
    def tile(a):
        return np.concatenate([a] * passes)

    x = {k: tile(v) for k, v in x.items()} if isinstance(x, dict) else tile(x)
    model.fit(x, tile(y), epochs=1, batch_size=batch_size, verbose=0)
    return model


def _base(x, y, seed, activation="softmax", epochs=20, name=None, input_name="x"):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((x.shape[1],), name=input_name)
    hidden = keras.layers.Dense(16, activation="relu")(inp)
    model = keras.Model(inp, keras.layers.Dense(3, activation=activation)(hidden), name=name)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=activation is None)
    model.compile(keras.optimizers.Adam(1e-2), loss)
    return _fit(model, x, y, epochs)


@pytest.fixture(scope="module")
def trained():
    x, y = _data()
    a = _base(x, y, 1)
    b = _base(x, y, 2, activation=None)  # outputs logits
    keras.utils.set_random_seed(3)
    fused = kfuse.stack([kfuse.Branch(a, name="a", inputs="x", trainable=False),
                         kfuse.Branch(b, name="b", inputs="x", trainable=False, output="probabilities")],
                        fusion="weighted_average", head=3, optimizer=keras.optimizers.Adam(1e-2))
    _fit(fused, x, y, 15)
    return x, y, a, b, fused


@pytest.mark.slow
def test_keras_models_and_fused_model(trained):
    x, y, a, b, fused = trained
    report = kfuse.compare({"a": a, "b": b, "fused": fused}, x, y)
    assert report.task == "classification"
    assert report.reference == "fused" and report.members == ["a", "b"]
    for name, model in (("a", a), ("b", b), ("fused", fused)):
        expected = np.mean(model.predict(x, verbose=0).argmax(1) == y)
        assert report.table.loc[name, "accuracy"] == pytest.approx(expected)
    assert report.table.loc["fused", "accuracy"] > 0.8
    # the plain model's logits are detected; the fused model's come from predict_proba
    assert any("'b' outputs logits" in n for n in report.notes)
    assert report.predictions["fused"].source == "predict_proba"
    np.testing.assert_allclose(report.predictions["fused"].values.sum(1), 1.0, atol=1e-5)
    # contributions: learned weights sum to one; ablation by presence mask
    c = report.contributions["fused"]
    assert set(c.weights) == {"a", "b"} and sum(c.weights.values()) == pytest.approx(1.0, abs=1e-5)
    assert c.weights == pytest.approx(fused.fusion_layer.branch_weights())
    assert c.method == "presence mask"
    assert c.full_score == pytest.approx(report.table.loc["fused", "accuracy"])
    assert list(c.table().columns) == ["fusion weight", "accuracy without branch", "accuracy drop"]
    assert c.ablation["accuracy without branch"].between(0, 1).all()


@pytest.mark.slow
def test_zeroed_ablation_matches_a_hand_built_probe(trained):
    """Concat has presence support; a branchless probe built by hand must agree with it."""
    x, y, a, b, _ = trained
    keras.utils.set_random_seed(4)
    fused = kfuse.stack([kfuse.Branch(a, name="a", inputs="x", trainable=False),
                         kfuse.Branch(b, name="b", inputs="x", trainable=False)],
                        fusion="concat", head=3)
    _fit(fused, x, y, 5)
    c = kfuse.compare({"fused": fused}, x, y).contributions["fused"]
    # masking branch b in Concat zeroes its slice: the same as the head on [a, 0]
    out_a = fused.branch_outputs(x)["a"]
    head = fused.get_layer("logits")
    logits = keras.ops.convert_to_numpy(head(np.concatenate([out_a, np.zeros((len(x), 3), "float32")], 1)))
    assert c.ablation.loc["b", "accuracy without branch"] == pytest.approx(np.mean(logits.argmax(1) == y))
    assert c.weights is None


@pytest.mark.slow
def test_multi_input_dict(trained):
    x, y, *_ = trained
    left, right = x[:, :4], x[:, 4:]
    base_left = _base(left, y, 5, name="left_net", input_name="left", epochs=8)
    base_right = _base(right, y, 6, name="right_net", input_name="right", epochs=4)
    fused = kfuse.stack([kfuse.Branch(base_left, name="l", inputs="left", trainable=False),
                         kfuse.Branch(base_right, name="r", inputs="right", trainable=False)],
                        fusion="concat", head=3, optimizer=keras.optimizers.Adam(3e-2))
    _fit(fused, {"left": left, "right": right}, y, 30, batch_size=100)
    data = {"left": left, "right": right}
    report = kfuse.compare({"left": base_left, "right": base_right, "fused": fused}, data, y)
    assert report.table.loc["left", "accuracy"] == pytest.approx(
        np.mean(base_left.predict(left, verbose=0).argmax(1) == y))
    assert set(report.contributions["fused"].ablation.index) == {"l", "r"}
    # the labels depend on the left input only: without it the model falls to chance
    drops = report.contributions["fused"].ablation["accuracy drop"]
    assert drops["l"] > 0.3 and abs(drops["r"]) < 0.1


@requires_tensorflow()
def test_tf_data_gives_the_same_table(trained):
    import tensorflow as tf

    x, y, a, _, fused = trained
    arrays = kfuse.compare({"a": a, "fused": fused}, x, y, contributions=False)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    streamed = kfuse.compare({"a": a, "fused": fused}, ds, contributions=False)
    np.testing.assert_allclose(streamed.table.to_numpy(), arrays.table.to_numpy())
    rows = tf.data.Dataset.from_tensor_slices(({"x": x}, y))  # unbatched, dict inputs
    np.testing.assert_allclose(kfuse.compare({"a": a}, rows).table.to_numpy(),
                               arrays.table.loc[["a"]].to_numpy())


def test_sklearn_estimator_and_arrays_mix(trained):
    from sklearn.linear_model import LogisticRegression

    x, y, a, _, _ = trained
    logreg = LogisticRegression(max_iter=500).fit(x, y)
    report = kfuse.compare({"logreg": logreg, "a_probs": a.predict(x, verbose=0)}, x, y, reference="logreg")
    assert report.table.loc["logreg", "accuracy"] == pytest.approx(logreg.score(x, y))
    assert report.predictions["logreg"].source == "predict_proba"


@pytest.mark.slow
def test_regression_fused_model(rng):
    x = rng.normal(size=(200, 6)).astype("float32")
    y = x[:, 0] * 2 + x[:, 1]
    keras.utils.set_random_seed(0)
    base = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8)])
    fused = kfuse.stack([kfuse.Branch(base, name="lin", inputs="x"),
                         kfuse.Branch(lambda t: keras.layers.Dense(4)(t), name="fresh", inputs="x")],
                        fusion="concat", head=kfuse.layers.heads.Regression(1),
                        optimizer=keras.optimizers.Adam(3e-2))
    _fit(fused, x, y, 30, batch_size=50)
    report = kfuse.compare({"mean": np.full_like(y, y.mean()), "fused": fused}, x, y)
    assert report.task == "regression"
    assert report.table.loc["fused", "mae"] < report.table.loc["mean", "mae"]
    c = report.contributions["fused"]
    assert c.metric == "mae" and c.method == "presence mask"
    assert set(report.figures()) == {"predicted_vs_true", "residuals", "contributions_fused"}


@pytest.mark.slow
def test_stacker_is_compared_and_decomposed():
    """A fitted kfuse Stacker: scored through predict_proba, decomposed through model_."""
    import warnings

    x, y = _data(n=160, seed=1)
    branches = [kfuse.Branch(_base(x, y, s, epochs=5, name=f"n{s}"), name=f"n{s}", inputs="x",
                             trainable=False) for s in (1, 2)]
    stacker = kfuse.Stacker(branches, head=3, cv="prefit", verbose=0, meta_fit={"epochs": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # prefit's warning about the stacking leak
        stacker.fit(x, y)
    report = kfuse.compare({"stacker": stacker}, x, y)
    assert report.reference == "stacker"
    assert report.predictions["stacker"].source == "predict_proba"
    expected = np.mean(stacker.predict_proba(x).argmax(1) == y)
    assert report.table.loc["stacker", "accuracy"] == pytest.approx(expected)
    c = report.contributions["stacker"]
    assert set(c.ablation.index) == {"n1", "n2"}
    assert c.full_score == pytest.approx(expected)
