import numpy as np
import pytest
from keras import ops

from kfuse.layers import Median, OutlierGatedAverage, TrimmedMean
from tests.helpers import run_fusion_layer_test


def _members(*values):
    return [np.array(v, "float32") for v in values]


@pytest.mark.parametrize(
    "cls,kwargs", [(TrimmedMean, {"trim": 1}), (Median, {}), (OutlierGatedAverage, {"threshold": 2.5})]
)
def test_robust_harness(cls, kwargs):
    run_fusion_layer_test(
        cls,
        kwargs,
        [(4, 3)] * 5,
        expected_output_shape=(4, 3),
        expected_num_trainable_weights=0,
        presence=np.array([[1, 1, 0, 1, 1]] * 4, "float32"),
    )


def test_trimmed_mean_drops_extremes_per_element():
    members = _members([[0.1, 5.0]], [[0.2, 0.0]], [[0.3, 1.0]], [[0.9, 2.0]])
    out = ops.convert_to_numpy(TrimmedMean(trim=1)(members))
    np.testing.assert_allclose(out, [[0.25, 1.5]], atol=1e-6)


def test_trimmed_mean_with_presence_shrinks_the_trim():
    members = _members([[1.0]], [[2.0]], [[3.0]], [[100.0]])
    presence = np.array([[1, 1, 0, 0]], "float32")
    out = ops.convert_to_numpy(TrimmedMean(trim=1)(members, presence=presence))
    np.testing.assert_allclose(out, [[1.5]], atol=1e-6)


def test_median_odd_even_and_masked():
    members = _members([[0.1]], [[0.2]], [[0.9]], [[0.4]])
    np.testing.assert_allclose(ops.convert_to_numpy(Median()(members[:3])), [[0.2]], atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(Median()(members)), [[0.3]], atol=1e-6)
    presence = np.array([[1, 0, 1, 1]], "float32")
    np.testing.assert_allclose(
        ops.convert_to_numpy(Median()(members, presence=presence)), [[0.4]], atol=1e-6
    )


def test_outlier_gated_drops_far_member_per_sample():
    members = _members(
        [[0.8, 0.2], [0.1, 0.9]], [[0.7, 0.3], [0.2, 0.8]], [[0.0, 1.0], [0.15, 0.85]]
    )
    layer = OutlierGatedAverage(threshold=3.0)
    weights = layer.member_weights(members)
    np.testing.assert_array_equal(weights, [[1, 1, 0], [1, 1, 1]])
    out = ops.convert_to_numpy(layer(members))
    np.testing.assert_allclose(out[0], [0.75, 0.25], atol=1e-6)
    np.testing.assert_allclose(out[1], [0.15, 0.85], atol=1e-6)


def test_outlier_gated_respects_presence():
    members = _members([[0.8, 0.2]], [[0.7, 0.3]], [[0.0, 1.0]])
    presence = np.array([[1, 0, 1]], "float32")
    weights = OutlierGatedAverage(threshold=3.0).member_weights(members, presence)
    assert weights[0, 1] == 0 and weights.sum() >= 1


def test_trimmed_mean_needs_enough_branches():
    with pytest.raises(ValueError, match="more than 4 branches"):
        TrimmedMean(trim=2)(_members([[1.0]], [[2.0]], [[3.0]], [[4.0]]))


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_trimmed_mean_rejects_bad_trim(bad):
    with pytest.raises(ValueError, match="trim"):
        TrimmedMean(trim=bad)


def test_outlier_gated_rejects_bad_threshold():
    with pytest.raises(ValueError, match="threshold"):
        OutlierGatedAverage(threshold=0)
