import numpy as np
import pytest
from keras import ops

from kfuse.layers import LowRankFusion
from tests.helpers import random_branches, run_fusion_layer_test


def test_low_rank_harness_three_branches():
    run_fusion_layer_test(
        LowRankFusion,
        {"units": 6, "rank": 3},
        [(4, 5), (4, 3), (4, 7)],
        expected_output_shape=(4, 6),
        expected_num_trainable_weights=5,
        presence=np.array([[1, 0, 1]] * 4, "float32"),
    )


def test_low_rank_matches_formula_and_registers_every_factor():
    x = random_branches([(3, 4), (3, 2), (3, 5), (3, 3)])
    layer = LowRankFusion(units=5, rank=2)
    out = ops.convert_to_numpy(layer(x))
    names = sorted(w.name for w in layer.trainable_weights)
    assert names == ["bias", "factor_0", "factor_1", "factor_2", "factor_3", "rank_weights"]
    product = np.ones((3, 2, 5))
    for z, factor in zip(x, layer.factors, strict=True):
        aug = np.concatenate([np.ones((3, 1)), z], axis=1)
        product *= np.einsum("bd,rdu->bru", aug, ops.convert_to_numpy(factor))
    expected = np.einsum("bru,r->bu", product, ops.convert_to_numpy(layer.rank_weights))
    np.testing.assert_allclose(out, expected + ops.convert_to_numpy(layer.bias), rtol=1e-4, atol=1e-5)
    assert layer.count_params() == 2 * 5 * (5 + 3 + 6 + 4) + 2 + 5


def test_low_rank_absent_branch_is_neutral():
    x = random_branches([(2, 4), (2, 3), (2, 5)])
    layer = LowRankFusion(units=4, rank=2)
    presence = np.array([[1, 0, 1]] * 2, "float32")
    a = ops.convert_to_numpy(layer(x, presence=presence))
    x[1] = x[1] * 100.0
    b = ops.convert_to_numpy(layer(x, presence=presence))
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{"rank": 0}, {"units": 0}, {"rank": -1}])
def test_low_rank_rejects_non_positive(kwargs):
    with pytest.raises(ValueError, match=list(kwargs)[0]):
        LowRankFusion(**kwargs)
