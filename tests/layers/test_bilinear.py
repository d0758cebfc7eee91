import numpy as np
import pytest
from keras import ops

from kfuse.layers import BilinearFusion
from tests.helpers import random_branches, run_fusion_layer_test


def test_bilinear_harness_mfb():
    run_fusion_layer_test(
        BilinearFusion,
        {"units": 4, "factor": 3},
        [(4, 5), (4, 3)],
        expected_output_shape=(4, 4),
        expected_num_trainable_weights=4,
        presence=np.array([[1, 0]] * 4, "float32"),
    )


def test_bilinear_matches_mfb_formula():
    x = random_branches([(3, 5), (3, 4)])
    layer = BilinearFusion(units=4, factor=2)
    out = ops.convert_to_numpy(layer(x))
    proj = [
        x[i] @ ops.convert_to_numpy(d.kernel) + ops.convert_to_numpy(d.bias)
        for i, d in enumerate(layer.projections)
    ]
    pooled = (proj[0] * proj[1]).reshape(3, 4, 2).sum(-1)
    signed = np.sign(pooled) * (np.sqrt(np.abs(pooled) + 1e-8) - 1e-4)
    expected = signed / np.linalg.norm(signed, axis=1, keepdims=True)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_bilinear_uses_every_branch_beyond_two():
    x = random_branches([(2, 4), (2, 3), (2, 5)])
    layer = BilinearFusion(units=4, factor=2, activation="tanh")
    a = ops.convert_to_numpy(layer(x))
    x[2] = x[2] + 1.0
    b = ops.convert_to_numpy(layer(x))
    assert np.abs(a - b).max() > 1e-3


def test_bilinear_rejects_bad_factor():
    with pytest.raises(ValueError, match="factor"):
        BilinearFusion(factor=0)
