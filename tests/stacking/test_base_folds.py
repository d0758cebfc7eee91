"""`BaseFolds`: the meta-feature model of a base is built once and serves every fold."""

import keras
import numpy as np

import kfuse
from kfuse.stacking import base_training as bt
from kfuse.stacking.base_folds import BaseFolds
from kfuse.stacking.data import read_data


def test_the_meta_feature_model_of_a_callable_is_built_once_for_every_fold():
    """Two fold models of one callable (Keras numbers their layers apart: `dense`,
    `dense_1`) share one meta-feature model, given each fold model's weights: its outputs
    equal those of a meta-feature model built for that fold model alone."""
    head = kfuse.layers.heads.Classification(3)
    branch = kfuse.Branch(lambda t: keras.layers.Dense(8, activation="relu")(t), name="fresh", inputs="x")
    rng = np.random.default_rng(0)
    data = read_data([branch], head, {"x": rng.normal(size=(20, 4)).astype("float32")}, np.arange(20) % 3)
    folds = BaseFolds([branch], {"fresh": "predict_proba"}, head, data, store=None, seed=0)
    keras.utils.set_random_seed(1)
    first, second = (bt.fresh_model(branch, data.shapes, head) for _ in range(2))
    assert [v.path for v in first.weights] != [v.path for v in second.weights]
    shared = folds._features_of(branch, first)
    on_first = bt.predict(shared, ["x"], data.arrays)
    assert folds._features_of(branch, second) is shared
    on_second = bt.predict(shared, ["x"], data.arrays)
    alone = bt.predict(bt.feature_model(branch, second, "predict_proba", data.shapes), ["x"], data.arrays)
    np.testing.assert_array_equal(on_second, alone)
    assert not np.array_equal(on_first, on_second)
