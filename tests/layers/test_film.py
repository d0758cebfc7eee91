import keras
import numpy as np
import pytest
from keras import ops

import kfuse
from kfuse.layers import FiLM
from tests.helpers import random_branches, run_fusion_layer_test


def test_film_harness_named_conditioning():
    run_fusion_layer_test(
        FiLM,
        {"conditioning": "meta", "branch_names": ["image", "meta"]},
        [(4, 6), (4, 3)],
        expected_output_shape=(4, 6),
        expected_num_trainable_weights=2,
        presence=np.array([[1, 0]] * 4, "float32"),
    )


def test_film_harness_three_branches_by_index():
    run_fusion_layer_test(
        FiLM,
        {"conditioning": 0},
        [(4, 3), (4, 5), (4, 2)],
        expected_output_shape=(4, 7),
        expected_num_trainable_weights=4,
    )


def test_film_formula_and_absent_conditioning_is_identity():
    x = random_branches([(3, 4), (3, 2)])
    layer = FiLM(conditioning=1)
    layer.build([(3, 4), (3, 2)])
    dense = layer.modulators[0]
    kernel = np.random.default_rng(1).normal(size=(2, 8)).astype("float32")
    dense.kernel.assign(kernel)
    out = ops.convert_to_numpy(layer(x))
    gb = x[1] @ kernel + ops.convert_to_numpy(dense.bias)
    np.testing.assert_allclose(out, (1 + gb[:, :4]) * x[0] + gb[:, 4:], atol=1e-5)
    absent = ops.convert_to_numpy(layer(x, presence=np.array([[1, 0]] * 3, "float32")))
    np.testing.assert_allclose(absent, x[0], atol=1e-6)


def test_film_sequence_branch_is_modulated_per_step():
    out = FiLM(conditioning=1)([np.ones((2, 5, 4), "float32"), np.ones((2, 3), "float32")])
    assert tuple(out.shape) == (2, 5, 4)


def test_film_without_conditioning_is_an_error():
    with pytest.raises(ValueError, match="conditioning branch"):
        FiLM()


def test_film_unknown_branch_name_is_an_error():
    with pytest.raises(ValueError, match="'audio' is not among the branch names"):
        FiLM(conditioning="audio", branch_names=["image", "text"])(random_branches([(2, 3), (2, 3)]))


def test_film_index_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="only 2 branches"):
        FiLM(conditioning=5)(random_branches([(2, 3), (2, 3)]))


def test_film_in_stack_by_branch_name(tmp_path):
    a = kfuse.Branch(lambda x: keras.layers.Dense(6)(x), name="image", inputs={"pixels": (8,)})
    b = kfuse.Branch(lambda x: keras.layers.Dense(3)(x), name="meta", inputs={"tabular": (4,)})
    model = kfuse.stack([a, b], fusion=FiLM(conditioning="meta"), head=3)
    x = {"pixels": np.ones((4, 8), "float32"), "tabular": np.ones((4, 4), "float32")}
    model.fit(x, np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    assert model.fusion_layer.conditioning_index(2) == 1
    with pytest.raises(ValueError, match="'meta'"):
        kfuse.stack([a, kfuse.Branch(b.base, name="other", inputs={"tabular": (4,)})],
                    fusion=FiLM(conditioning="meta"), head=3)
