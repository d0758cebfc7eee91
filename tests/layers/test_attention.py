import numpy as np
import pytest
from keras import ops

from kfuse.layers import AttentionFusion
from tests.helpers import random_branches, run_fusion_layer_test


def test_attention_harness_projected():
    run_fusion_layer_test(
        AttentionFusion,
        {"units": 8},
        [(4, 5), (4, 3), (4, 6)],
        expected_output_shape=(4, 8),
        expected_num_trainable_weights=9,
        presence=np.array([[1, 1, 0]] * 4, "float32"),
    )


def test_attention_harness_equal_widths_no_projection():
    run_fusion_layer_test(
        AttentionFusion,
        {},
        [(4, 6), (4, 6)],
        expected_output_shape=(4, 6),
        expected_num_trainable_weights=3,
    )


def test_attention_output_is_weighted_sum_of_branches():
    x = random_branches([(3, 4), (3, 4), (3, 4)])
    out, weights = AttentionFusion(return_weights=True)(x)
    out, weights = ops.convert_to_numpy(out), ops.convert_to_numpy(weights)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    expected = sum(weights[:, i : i + 1] * x[i] for i in range(3))
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_attention_absent_branch_has_zero_weight():
    x = random_branches([(2, 4), (2, 4), (2, 4)])
    presence = np.array([[1, 0, 1], [0, 0, 1]], "float32")
    out, weights = AttentionFusion(return_weights=True)(x, presence=presence)
    weights = ops.convert_to_numpy(weights)
    np.testing.assert_allclose(weights, weights * presence, atol=1e-7)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(out)[1], x[2][1], atol=1e-5)


def test_attention_unequal_widths_without_units_names_branches():
    layer = AttentionFusion(branch_names=["image", "text"])
    with pytest.raises(ValueError, match="branch 'text': 3"):
        layer(random_branches([(2, 4), (2, 3)]))


def test_attention_rejects_bad_units():
    with pytest.raises(ValueError, match="units"):
        AttentionFusion(units=0)
