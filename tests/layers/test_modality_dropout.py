import numpy as np
import pytest
from keras import ops

from kfuse.layers import GatedFusion, LowRankFusion, ModalityDropout
from tests.helpers import random_branches, run_fusion_layer_test


def test_modality_dropout_harness():
    run_fusion_layer_test(
        ModalityDropout,
        {"rate": 0.3, "fusion": GatedFusion(units=4), "seed": 3},
        [(8, 5), (8, 3)],
        expected_output_shape=(8, 4),
        expected_num_trainable_weights=6,
        presence=np.array([[1, 0]] * 8, "float32"),
    )


def test_modality_dropout_is_the_inner_fusion_at_inference():
    x = random_branches([(6, 5), (6, 3)])
    layer = ModalityDropout(0.9, fusion=LowRankFusion(units=4, rank=2))
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), ops.convert_to_numpy(layer.fusion(x)), atol=1e-6
    )


def test_modality_dropout_drops_whole_branches_keeping_one():
    layer = ModalityDropout(0.4, fusion="concat", seed=7)
    x = [np.ones((4000, 2), "float32"), np.ones((4000, 3), "float32"), np.ones((4000, 1), "float32")]
    out = ops.convert_to_numpy(layer(x, training=True))
    kept = np.stack([out[:, 0], out[:, 2], out[:, 5]], axis=1)
    assert set(np.unique(out)) <= {0.0, 1.0}
    np.testing.assert_array_equal(out[:, 0], out[:, 1])  # whole branch, not single features
    assert kept.sum(axis=1).min() == 1
    # P(dropped) = rate, plus the fallback when all three were dropped
    assert 0.33 < 1 - kept.mean() < 0.42


def test_modality_dropout_never_revives_an_absent_branch():
    layer = ModalityDropout(0.5, fusion="concat", seed=1)
    x = [np.ones((500, 1), "float32")] * 3
    presence = np.tile(np.array([[0, 1, 1]], "float32"), (500, 1))
    out = ops.convert_to_numpy(layer(x, presence=presence, training=True))
    assert out[:, 0].max() == 0.0 and out[:, 1:].sum(axis=1).min() >= 1


@pytest.mark.parametrize("rate", [-0.1, 1.0, "0.3"])
def test_modality_dropout_rejects_bad_rate(rate):
    with pytest.raises(ValueError, match="rate"):
        ModalityDropout(rate)
