import keras
import numpy as np
import pytest
from keras import ops

from kfuse.layers import CrossAttentionFusion
from tests.helpers import random_branches, run_fusion_layer_test

# Eager JAX compiles MultiHeadAttention op by op (~30 s a test here); the harness and the
# presence tests cover JAX, these numeric checks of backend-independent maths run on TF.
numeric_on_tf = pytest.mark.skipif(
    keras.backend.backend() == "jax", reason="backend-independent maths; checked on TensorFlow"
)


def test_cross_attention_harness():
    run_fusion_layer_test(
        CrossAttentionFusion,
        {"units": 8, "num_heads": 2},
        [(4, 5, 4), (4, 7, 3)],
        expected_output_shape=(4, 8),
        expected_num_trainable_weights=24,
        presence=np.array([[1, 0]] * 4, "float32"),
    )


@numeric_on_tf
def test_cross_attention_ignores_padded_steps():
    x = random_branches([(2, 5, 4), (2, 6, 3), (2, 4, 2)])
    masks = [np.array([[1, 1, 1, 0, 0]] * 2), None, np.array([[1, 1, 0, 0], [1, 0, 0, 0]])]
    layer = CrossAttentionFusion(units=8, num_heads=2)
    a = ops.convert_to_numpy(layer(x, mask=masks))
    x[0][:, 3:] = 50.0
    x[2][:, 2:] = -7.0
    b = ops.convert_to_numpy(layer(x, mask=masks))
    np.testing.assert_allclose(a, b, atol=1e-5)


@numeric_on_tf
def test_cross_attention_reads_keras_masks():
    tokens = keras.Input((5,), dtype="int32")
    audio = keras.Input((6, 3))
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(tokens)
    layer = CrossAttentionFusion(units=8, num_heads=2)
    model = keras.Model([tokens, audio], layer([embedded, audio]))
    ids = np.array([[3, 4, 0, 0, 0], [1, 2, 5, 0, 0]])
    sound = random_branches([(2, 6, 3)])[0]
    vectors = model.layers[1](ids) if model.layers[1].name.startswith("embedding") else None
    if vectors is None:
        vectors = model.get_layer(index=2)(ids)
    explicit = layer([vectors, sound], mask=[ids > 0, None])
    np.testing.assert_allclose(model.predict([ids, sound], verbose=0), explicit, atol=1e-5)


def test_cross_attention_rejects_non_sequences():
    layer = CrossAttentionFusion(units=8, branch_names=["text", "tabular"])
    with pytest.raises(ValueError, match="branch 'tabular' outputs shape"):
        layer(random_branches([(2, 5, 4), (2, 3)]))


def test_cross_attention_rejects_bad_heads():
    with pytest.raises(ValueError, match="num_heads"):
        CrossAttentionFusion(num_heads=0)
