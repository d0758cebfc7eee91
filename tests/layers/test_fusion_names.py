import keras
import numpy as np
import pytest

import kfuse
from kfuse import layers

NEW = ["gated", "attention", "low_rank", "tensor", "bilinear", "film", "trimmed_mean", "median",
       "outlier_gated"]


def test_every_operator_is_registered_by_name():
    names = layers.fusion_names()
    for name in NEW + ["cross_attention"]:
        assert name in names
        assert isinstance(layers.get_fusion(name), layers.FusionLayer)


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="stack() is checked on TensorFlow")
@pytest.mark.parametrize("name", NEW)
def test_stack_by_name_with_presence_input(name):
    branches = [
        kfuse.Branch(lambda t: keras.layers.Dense(8)(t), name=f"b{i}", inputs={f"x{i}": (4,)})
        for i in range(3)
    ]
    model = kfuse.stack(branches, fusion=name, head=3, presence_input=True)
    rng = np.random.default_rng(0)
    x = {f"x{i}": rng.normal(size=(5, 4)).astype("float32") for i in range(3)}
    full = model.predict(x, verbose=0)
    assert full.shape == (5, 3) and np.all(np.isfinite(full))
    masked = {**x, "presence": np.tile([[1.0, 1.0, 0.0]], (5, 1)).astype("float32")}
    changed = {**masked, "x2": x["x2"] * 50.0}
    np.testing.assert_allclose(model.predict(masked, verbose=0), model.predict(changed, verbose=0), atol=1e-4)
