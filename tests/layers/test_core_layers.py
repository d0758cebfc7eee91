"""Core fusion layers: Concat, Average, WeightedAverage, Vote (run on TF and JAX)."""

import keras
import numpy as np
import pytest

import kfuse
from tests.helpers import run_fusion_layer_test


def test_concat_plain():
    out = run_fusion_layer_test(
        kfuse.layers.Concat, {}, [(4, 3), (4, 5)], (4, 8), expected_num_trainable_weights=0
    )
    assert out.shape == (4, 8)


def test_concat_projection_and_norm():
    run_fusion_layer_test(
        kfuse.layers.Concat,
        {"units": 6, "activation": "relu", "normalize": True},
        [(4, 3), (4, 5), (4, 2)],
        (4, 18),
        expected_num_trainable_weights=3 * 2 + 3 * 2,  # 3 Dense(kernel, bias) + 3 LayerNorm
    )


def test_concat_values_are_the_branches_side_by_side():
    a, b = np.ones((2, 2), "float32"), 2 * np.ones((2, 3), "float32")
    out = keras.ops.convert_to_numpy(kfuse.layers.Concat()([a, b]))
    np.testing.assert_allclose(out, np.concatenate([a, b], -1))


def test_average_values_and_presence():
    run_fusion_layer_test(kfuse.layers.Average, {}, [(4, 3), (4, 3)], (4, 3), 0)
    a, b = np.ones((2, 3), "float32"), 3 * np.ones((2, 3), "float32")
    out = keras.ops.convert_to_numpy(kfuse.layers.Average()([a, b]))
    np.testing.assert_allclose(out, 2.0)
    presence = np.array([[1, 0], [1, 1]], "float32")
    out = keras.ops.convert_to_numpy(kfuse.layers.Average()([a, b], presence=presence))
    np.testing.assert_allclose(out[0], 1.0)  # the absent branch gets no weight
    np.testing.assert_allclose(out[1], 2.0)


def test_weighted_average_fixed():
    run_fusion_layer_test(
        kfuse.layers.WeightedAverage, {"weights": [3, 1], "learnable": False}, [(4, 3), (4, 3)], (4, 3), 0
    )
    layer = kfuse.layers.WeightedAverage(weights=[3, 1], learnable=False, branch_names=["a", "b"])
    out = keras.ops.convert_to_numpy(layer([np.ones((2, 3)), np.zeros((2, 3))]))
    np.testing.assert_allclose(out, 0.75, rtol=1e-6)
    assert layer.branch_weights() == {"a": 0.75, "b": 0.25}


def test_weighted_average_learned_moves_to_the_better_branch():
    run_fusion_layer_test(kfuse.layers.WeightedAverage, {}, [(4, 3), (4, 3), (4, 3)], (4, 3), 1)
    rng = np.random.default_rng(0)
    target = rng.normal(size=(256, 4)).astype("float32")
    good = target + 0.05 * rng.normal(size=target.shape).astype("float32")
    bad = rng.normal(size=target.shape).astype("float32")
    inputs = [keras.Input((4,)), keras.Input((4,))]
    layer = kfuse.layers.WeightedAverage(branch_names=["good", "bad"])
    model = keras.Model(inputs, layer(inputs))
    model.compile(keras.optimizers.Adam(0.1), "mse")
    model.fit([good, bad], target, epochs=30, batch_size=64, verbose=0)
    weights = layer.branch_weights()
    assert weights["good"] > 0.9, weights
    assert abs(sum(weights.values()) - 1) < 1e-5


def test_vote_soft_and_hard():
    a = np.array([[0.9, 0.1]], "float32")
    b = np.array([[0.4, 0.6]], "float32")
    c = np.array([[0.45, 0.55]], "float32")
    hard = keras.ops.convert_to_numpy(kfuse.layers.Vote("hard")([a, b, c]))
    soft = keras.ops.convert_to_numpy(kfuse.layers.Vote("soft")([a, b, c]))
    np.testing.assert_allclose(hard, [[1 / 3, 2 / 3]], rtol=1e-6)
    np.testing.assert_allclose(soft, [[1.75 / 3, 1.25 / 3]], rtol=1e-6)
    logits = np.log(np.stack([a, b, c]))
    soft_logits = kfuse.layers.Vote("soft", inputs_are="logits")(list(logits))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(soft_logits), soft, rtol=1e-5)
    run_fusion_layer_test(kfuse.layers.Vote, {"mode": "hard"}, [(4, 5), (4, 5)], (4, 5), 0)


@pytest.mark.parametrize("cls", [kfuse.layers.Average, kfuse.layers.Vote, kfuse.layers.WeightedAverage])
def test_equal_shape_operators_name_the_mismatched_branches(cls):
    layer = cls(branch_names=["cnn", "gru"])
    with pytest.raises(ValueError, match=r"branch 'gru' outputs \(4,\).*branch 'cnn' outputs \(3,\)"):
        layer.build([(None, 3), (None, 4)])


def test_bad_arguments():
    with pytest.raises(ValueError, match="units"):
        kfuse.layers.Concat(units=0)
    with pytest.raises(ValueError, match="mode"):
        kfuse.layers.Vote("majority")
    with pytest.raises(ValueError, match="non-negative"):
        kfuse.layers.WeightedAverage(weights=[-1, 2])
    with pytest.raises(ValueError, match="2 weights"):
        kfuse.layers.WeightedAverage(weights=[1, 2]).build([(None, 3)] * 3)


def test_unknown_fusion_name_lists_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown fusion 'concatt'.*Valid names: \[.*'concat'.*Did you mean \['concat'\]"):
        kfuse.layers.get_fusion("concatt")
