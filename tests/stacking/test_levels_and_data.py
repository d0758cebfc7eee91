"""levels=2, regression, and multi-input data given as a dict or a tf.data.Dataset."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kfuse
from tests.helpers import assert_round_trip
from tests.stacking import accuracy, blobs, trained_model


def dense(units):
    return lambda t: keras.layers.Dense(units, activation="relu")(t)


@pytest.mark.slow
def test_two_level_stacking_is_one_graph(tmp_path):
    x, y = blobs(120, seed=0)
    x_test, y_test = blobs(60, seed=1)
    branches = [
        kfuse.Branch(
            trained_model("a", x, y, epochs=10), name="a", inputs="signal", trainable=False
        ),
        kfuse.Branch(
            trained_model("b", x, y, epochs=10, seed=1), name="b", inputs="signal", trainable=False
        ),
    ]
    # selection="meta": the level-2 graph itself (auto may choose fixed level-1 weights)
    stacker = kfuse.Stacker(branches, head=3, cv=2, levels=2, verbose=0, meta_fit={"epochs": 30}, selection="meta")
    stacker.fit(x, y)
    level2 = stacker.level2_
    assert set(level2.cv_scores) == {"l2_linear", "l2_mlp"}
    assert level2.oof["level2"].shape == (120, 6)  # two level-2 learners x 3 classes
    assert stacker.model_.branch_names == ["level2"]
    inner = [layer.name for layer in stacker.model_.branch("level2").layers]
    assert {"a", "b", "level1", "l2_linear", "l2_mlp"} <= set(inner)
    assert accuracy(stacker.predict(x_test), y_test) > 0.85
    assert_round_trip(stacker.model_, x_test, tmp_path)


@pytest.mark.slow
def test_regression_with_two_inputs_from_tf_data():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(96, 4)).astype("float32")
    v = rng.normal(size=(96, 3)).astype("float32")
    target = (u[:, 0] + 2 * v[:, 1]).astype("float32")
    branches = [
        kfuse.Branch(dense(8), name="bu", inputs="u", fit={"epochs": 30, "learning_rate": 1e-2}),
        kfuse.Branch(dense(8), name="bv", inputs="v", fit={"epochs": 30, "learning_rate": 1e-2}),
    ]
    dataset = tf.data.Dataset.from_tensor_slices(({"u": u, "v": v}, target)).batch(16)
    stacker = kfuse.Stacker(
        branches,
        head=kfuse.layers.heads.Regression(),
        cv=2,
        refit=False,
        verbose=0,
        meta_fit={"epochs": 60},
    ).fit(dataset)
    assert stacker.cv_metric_ == "mse"
    assert stacker.methods_ == {"bu": "raw", "bv": "raw"}
    assert stacker.oof_predictions_["bu"].shape == (96, 1)
    # each branch sees one input, the stack sees both: it beats either branch
    stacked = float(np.mean((stacker.predict({"u": u, "v": v})[:, 0] - target) ** 2))
    assert stacked < min(np.mean(s) for s in stacker.cv_scores_.values())
    assert stacked < 0.5 * np.var(target)
    assert set(stacker.model_.input_names) == {"u", "v"}
