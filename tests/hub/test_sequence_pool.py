"""Sequence outputs pooled inside a branch, against numpy; and the errors of select/tap/pool."""

import keras
import numpy as np
import pytest

import kfuse
from kfuse.branches.sequence_pool import POOLS, SequencePool
from tests.hub.families import backbone_families


def _numpy_pool(x, mask, mode):
    if mode == "mean":
        return x.mean(1)
    if mode == "first":
        return x[:, 0]
    if mode == "masked_mean":
        return np.stack([row[m > 0].mean(0) for row, m in zip(x, mask, strict=True)])
    return np.stack([row[np.flatnonzero(m)[-1]] for row, m in zip(x, mask, strict=True)])


@pytest.mark.parametrize("mode", POOLS)
def test_sequence_pool_against_numpy(mode):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6, 5)).astype("float32")
    mask = np.array(
        [[1] * 6, [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0], [0, 0, 1, 1, 1, 0]]
    )  # left padding too
    layer = SequencePool(mode)
    np.testing.assert_allclose(
        np.asarray(layer([x, mask.astype(bool)])), _numpy_pool(x, mask, mode), atol=1e-6
    )
    again = SequencePool.from_config(layer.get_config())
    np.testing.assert_allclose(np.asarray(again([x, mask])), _numpy_pool(x, mask, mode), atol=1e-6)


def test_sequence_pool_without_mask_and_on_a_feature_map():
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 5)).astype("float32")
    np.testing.assert_allclose(np.asarray(SequencePool("mean")(x)), x.mean((1, 2)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(SequencePool("last")(x[:, 0])), x[:, 0, -1], atol=1e-6)
    with pytest.raises(ValueError, match="`mode` must be one of .* received 'max'"):
        SequencePool("max")


@pytest.fixture(scope="module")
def bert():
    return backbone_families()["bert"]()[0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(select="sequense_output"),
            r"Branch 'bert'.*no output 'sequense_output' \(closest: \['sequence_output'",
        ),
        (
            dict(tap="transformer_layer_9"),
            r"Branch 'bert': tap='transformer_layer_9' names no layer.*transformer_layer_0",
        ),
        (
            dict(select="sequence_output", pool="maen"),
            r"Branch 'bert': `pool` must be one of .* received 'maen'",
        ),
        (
            dict(select="pooled_output", pool="first"),
            r"Branch 'bert': pool='first' pools a sequence.*shape \(None, 16\)",
        ),
        (dict(pool="mean"), r"Branch 'bert': the base has 2 outputs"),
    ],
)
def test_bad_select_tap_pool_named_clearly(bert, kwargs, match):
    with pytest.raises(ValueError, match=match):
        kfuse.Branch(bert, name="bert", **kwargs)


def test_masked_pool_needs_a_padding_mask():
    vit = backbone_families()["vit"]()[0]
    with pytest.raises(
        ValueError,
        match=r"Branch 'vit': pool='masked_mean' needs the base's padding mask.*\['images'\]",
    ):
        kfuse.Branch(vit, name="vit", pool="masked_mean")
    with pytest.raises(ValueError, match=r"Branch 'f': pool='mean' needs a base model"):
        kfuse.Branch(lambda x: keras.layers.Dense(2)(x), name="f", inputs={"x": (3,)}, pool="mean")
