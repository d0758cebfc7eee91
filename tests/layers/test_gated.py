import numpy as np
import pytest
from keras import ops

from kfuse.layers import GatedFusion
from tests.helpers import random_branches, run_fusion_layer_test


def test_gated_harness_branch_gates():
    run_fusion_layer_test(
        GatedFusion,
        {"units": 8},
        [(4, 5), (4, 3)],
        expected_output_shape=(4, 8),
        expected_num_trainable_weights=6,
    )


def test_gated_harness_feature_gates_with_presence():
    run_fusion_layer_test(
        GatedFusion,
        {"units": 6, "gate": "feature"},
        [(4, 5), (4, 3), (4, 2)],
        expected_output_shape=(4, 6),
        expected_num_trainable_weights=8,
        presence=np.array([[1, 0, 1]] * 4, "float32"),
    )


def test_gated_output_is_gate_weighted_sum_of_tanh_projections():
    x = random_branches([(3, 5), (3, 4), (3, 2)])
    layer = GatedFusion(units=4, return_gates=True)
    out, gates = (ops.convert_to_numpy(t) for t in layer(x))
    np.testing.assert_allclose(gates.sum(axis=1), 1.0, atol=1e-6)
    hidden = [
        np.tanh(x[i] @ ops.convert_to_numpy(d.kernel) + ops.convert_to_numpy(d.bias))
        for i, d in enumerate(layer.projections)
    ]
    expected = sum(gates[:, i : i + 1] * hidden[i] for i in range(3))
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_gated_feature_gates_two_branches_are_z_and_one_minus_z():
    x = random_branches([(3, 5), (3, 4)])
    _, gates = GatedFusion(units=4, gate="feature", return_gates=True)(x)
    gates = ops.convert_to_numpy(gates)
    assert gates.shape == (3, 2, 4)
    np.testing.assert_allclose(gates[:, 0] + gates[:, 1], 1.0, atol=1e-6)


def test_gated_absent_branch_gets_zero_gate_and_renormalises():
    x = random_branches([(2, 5), (2, 4), (2, 3)])
    presence = np.array([[1, 0, 1], [0, 1, 1]], "float32")
    _, gates = GatedFusion(units=4, return_gates=True)(x, presence=presence)
    gates = ops.convert_to_numpy(gates)
    np.testing.assert_allclose(gates * (1 - presence), 0.0, atol=1e-7)
    np.testing.assert_allclose(gates.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("units", [0, -3, 2.5, None])
def test_gated_rejects_bad_units(units):
    with pytest.raises(ValueError, match="units"):
        GatedFusion(units=units)


def test_gated_rejects_bad_gate():
    with pytest.raises(ValueError, match="gate"):
        GatedFusion(gate="sigmoid-ish")
