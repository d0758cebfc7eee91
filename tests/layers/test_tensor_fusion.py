import numpy as np
import pytest
from keras import ops

from kfuse.layers import LowRankFusion, TensorFusion, cost
from tests.helpers import random_branches, run_fusion_layer_test


def test_tensor_harness_raw_product():
    run_fusion_layer_test(
        TensorFusion,
        {},
        [(4, 3), (4, 2), (4, 1)],
        expected_output_shape=(4, 4 * 3 * 2),
        expected_num_trainable_weights=0,
        presence=np.array([[1, 1, 0]] * 4, "float32"),
    )


def test_tensor_harness_projected():
    run_fusion_layer_test(
        TensorFusion,
        {"units": 5},
        [(4, 3), (4, 2)],
        expected_output_shape=(4, 5),
        expected_num_trainable_weights=2,
    )


def test_tensor_is_outer_product_of_augmented_vectors():
    x = random_branches([(2, 3), (2, 2), (2, 2)])
    out = ops.convert_to_numpy(TensorFusion()(x))
    for b in range(2):
        aug = [np.concatenate([[1.0], z[b]]) for z in x]
        np.testing.assert_allclose(out[b], np.kron(np.kron(aug[0], aug[1]), aug[2]), rtol=1e-5)


def test_tensor_guard_refuses_and_states_low_rank_cost():
    layer = TensorFusion(units=16, max_size=1000, branch_names=["a", "b", "c"])
    lmf = LowRankFusion.cost_formula([20, 20, 20], units=16, rank=4)
    with pytest.raises(ValueError) as info:
        layer(random_branches([(2, 20), (2, 20), (2, 20)]))
    message = str(info.value)
    assert "9,261 features" in message and "max_size=1,000" in message
    assert "LowRankFusion(units=16, rank=4)" in message
    assert f"{lmf['params']:,} parameters" in message
    assert "branch 'c'" in message
    assert cost("tensor", [20, 20, 20], units=16)["params"] == 9261 * 16 + 16


def test_tensor_rejects_bad_max_size():
    with pytest.raises(ValueError, match="max_size"):
        TensorFusion(max_size=0)
