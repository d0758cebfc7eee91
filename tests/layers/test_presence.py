"""Every multimodal operator honours a (batch, M) presence mask and rejects bad ones."""

import keras
import numpy as np
import pytest
from keras import ops

from kfuse import layers
from tests.helpers import random_branches

FLAT = [(3, 4), (3, 5), (3, 3)]
EQUAL = [(3, 4)] * 3
SEQ = [(3, 5, 4), (3, 6, 3), (3, 4, 2)]

OPERATORS = {
    "gated": (lambda: layers.GatedFusion(units=4), FLAT),
    "gated_feature": (lambda: layers.GatedFusion(units=4, gate="feature"), FLAT),
    "attention": (lambda: layers.AttentionFusion(units=4), FLAT),
    "cross_attention": (lambda: layers.CrossAttentionFusion(units=4, num_heads=2), SEQ),
    "low_rank": (lambda: layers.LowRankFusion(units=4, rank=2), FLAT),
    "tensor": (lambda: layers.TensorFusion(units=4), FLAT),
    "bilinear": (lambda: layers.BilinearFusion(units=4, factor=2), FLAT),
    "film": (lambda: layers.FiLM(conditioning=0), FLAT),
    "trimmed_mean": (lambda: layers.TrimmedMean(trim=1), EQUAL),
    "median": (lambda: layers.Median(), EQUAL),
    "outlier_gated": (lambda: layers.OutlierGatedAverage(), EQUAL),
    "modality_dropout": (lambda: layers.ModalityDropout(0.5, layers.GatedFusion(units=4)), FLAT),
}


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_absent_branch_contributes_nothing(name):
    factory, shapes = OPERATORS[name]
    layer = factory()
    x = random_branches(shapes)
    presence = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0]], "float32")
    before = ops.convert_to_numpy(layer(x, presence=presence))
    x[2] = x[2] * 25.0 + 4.0
    after = ops.convert_to_numpy(layer(x, presence=presence))
    np.testing.assert_allclose(before, after, atol=1e-4)
    full = ops.convert_to_numpy(layer(x, presence=np.ones((3, 3), "float32")))
    np.testing.assert_allclose(full, ops.convert_to_numpy(layer(x)), atol=1e-5)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_presence_of_wrong_shape_is_an_error(name):
    factory, shapes = OPERATORS[name]
    x = random_branches(shapes)
    with pytest.raises(ValueError, match=r"presence mask must have shape \(batch, 3\)"):
        factory()(x, presence=np.ones((3, 4), "float32"))
    with pytest.raises(ValueError, match="presence mask"):
        factory()(x, presence=np.ones((3,), "float32"))


def test_presence_of_wrong_shape_fails_when_the_graph_is_built():
    inputs = [keras.Input((4,)), keras.Input((5,))]
    presence = keras.Input((3,))
    with pytest.raises(ValueError, match=r"\(batch, 2\)"):
        layers.GatedFusion(units=4)(inputs, presence=presence)


@pytest.mark.parametrize("name", sorted(set(OPERATORS) - {"modality_dropout"}))
def test_fewer_than_two_branches_is_an_error(name):
    factory, shapes = OPERATORS[name]
    with pytest.raises(ValueError, match="at least 2 branches"):
        factory()(random_branches(shapes[:1]))


def test_presence_in_a_functional_graph_saves_and_reloads(tmp_path):
    branches = [keras.Input((4,), name="a"), keras.Input((5,), name="b")]
    presence = keras.Input((2,), name="presence")
    fused = layers.AttentionFusion(units=3)(branches, presence=presence)
    model = keras.Model([*branches, presence], keras.layers.Dense(2)(fused))
    x = random_branches([(3, 4), (3, 5)]) + [np.array([[1, 0], [0, 1], [1, 1]], "float32")]
    before = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    after = keras.saving.load_model(tmp_path / "m.keras").predict(x, verbose=0)
    np.testing.assert_allclose(before, after, atol=1e-6)
    x[1] = x[1] + 10.0
    np.testing.assert_allclose(model.predict(x, verbose=0)[0], before[0], atol=1e-5)
