import keras
import pytest

from kfuse import layers
from tests.helpers import random_branches

# cost() is plain Python; building the layers to check it gains nothing from a 2nd backend
pytestmark = pytest.mark.skipif(keras.backend.backend() == "jax", reason="backend-independent")

CASES = [
    ("gated", {"units": 8}, [5, 3, 4]),
    ("gated", {"units": 8, "gate": "feature"}, [5, 3]),
    ("attention", {"units": 8}, [5, 3, 4]),
    ("low_rank", {"units": 8, "rank": 3}, [5, 3, 4]),
    ("tensor", {"units": 8}, [5, 3, 4]),
    ("bilinear", {"units": 8, "factor": 2}, [5, 3, 4]),
    ("film", {}, [5, 3, 4]),
    ("median", {}, [4, 4, 4]),
    ("concat", {"units": 6, "normalize": True}, [5, 3]),
    ("weighted_average", {}, [4, 4]),
]


@pytest.mark.parametrize("name,kwargs,widths", CASES)
def test_cost_params_match_the_built_layer(name, kwargs, widths):
    predicted = layers.cost(name, widths, **kwargs)
    layer = type(layers.get_fusion(name)).from_config({**layers.get_fusion(name).get_config(), **kwargs})
    layer(random_branches([(2, w) for w in widths]))
    assert predicted["params"] == layer.count_params()
    assert predicted["flops"] > 0
    out = layer.compute_output_shape([(2, w) for w in widths])
    assert predicted["output_width"] == out[-1]


def test_cost_of_cross_attention_matches():
    predicted = layers.cost(layers.CrossAttentionFusion, [(5, 4), (7, 3)], units=8, num_heads=2)
    layer = layers.CrossAttentionFusion(units=8, num_heads=2)
    layer(random_branches([(2, 5, 4), (2, 7, 3)]))
    assert predicted["params"] == layer.count_params()


def test_cost_of_an_instance_and_of_modality_dropout():
    gated = layers.GatedFusion(units=16)
    assert layers.cost(gated, [8, 8])["params"] == layers.cost("gated", [8, 8], units=16)["params"]
    wrapped = layers.cost(layers.ModalityDropout(0.2, gated), [8, 8])
    assert wrapped["params"] == layers.cost(gated, [8, 8])["params"]


def test_tensor_cost_explodes_and_low_rank_stays_linear():
    tensor = [layers.cost("tensor", [128] * m, units=64)["params"] for m in (2, 4, 8)]
    low_rank = [layers.cost("low_rank", [128] * m, units=64)["params"] for m in (2, 4, 8)]
    assert tensor[2] > 1e16 and tensor[2] / tensor[0] > 1e12
    per_branch = [(low_rank[1] - low_rank[0]) / 2, (low_rank[2] - low_rank[1]) / 4]
    assert per_branch[0] == per_branch[1] == 4 * 64 * 129


@pytest.mark.parametrize("widths", [[], [0, 3], [2.5, 3], "128"])
def test_cost_rejects_bad_widths(widths):
    with pytest.raises(ValueError, match="branch_widths|width"):
        layers.cost("gated", widths)


def test_cost_rejects_unknown_operator():
    with pytest.raises(ValueError, match="Unknown fusion"):
        layers.cost("nope", [3, 3])
