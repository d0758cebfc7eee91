"""`kfuse.inputs.checked_xy`: an ensemble's x and y, checked once at the start of its fit."""

import keras
import numpy as np
import pandas as pd
import pytest

from kfuse.inputs import checked_xy, row_count, take
from tests.conftest import requires_tensorflow

WHERE = "BaggingClassifier.fit"
X = np.arange(24, dtype="float32").reshape(12, 2)
Y = np.arange(12) % 2


def test_numpy_passes_as_it_is_and_other_forms_become_numpy():
    x, y = checked_xy(X, Y, WHERE)
    assert x is X and y is Y  # nothing copied: the members train on the user's arrays
    frame, y = checked_xy(pd.DataFrame(X, columns=["a", "b"]), pd.Series(Y), WHERE)
    np.testing.assert_array_equal(frame, X)
    assert isinstance(y, np.ndarray) and y.tolist() == Y.tolist()
    texts, _ = checked_xy(["a b", "c"], [0, 1], WHERE)
    assert texts.tolist() == ["a b", "c"]
    named, _ = checked_xy({"a": X.tolist(), "b": np.array([b"x"] * 12)}, Y, WHERE)
    assert named["a"].shape == (12, 2) and named["b"][0] == "x"  # bytes decoded: Keras takes str
    assert row_count(named) == 12 and take(named, [0, 3])["a"].tolist() == [[0, 1], [6, 7]]


@pytest.mark.parametrize("x, y, message", [
    (None, Y, r"BaggingClassifier\.fit needs x and y; received x=NoneType, y=ndarray"),
    (X, Y[:5], r"x has 12 rows \('x': 12\) but y has 5; they must match"),
    ({"a": X, "b": X[:3]}, Y, r"different numbers of rows \('a': 12, 'b': 3\)"),
    ((X, X), Y, r"x is a tuple of 2 arrays; pass one array, or several inputs as a dict"),
    (X[:0], Y[:0], "x has no rows"),
])  # fmt: skip
def test_bad_shapes_are_refused_naming_what_was_received(x, y, message):
    with pytest.raises(ValueError, match=message):
        checked_xy(x, y, WHERE)


def test_nonfinite_values_are_refused_naming_the_input_and_rows():
    side = np.zeros((12, 1))
    side[[4, 9]] = np.inf
    with pytest.raises(ValueError, match=r"fit: input 'b' has NaN or infinite values in rows \[4, 9\] \(2 of 12\); every member"):
        checked_xy({"a": X, "b": side}, Y, WHERE)
    with pytest.raises(ValueError, match=r"fit: the targets y has NaN or infinite values in rows \[2\].*drop those rows"):
        checked_xy(X, np.where(np.arange(12) == 2, np.nan, 1.0), WHERE)


@requires_tensorflow()
def test_a_dataset_is_read_with_its_labels_and_an_ensemble_fits_on_it():
    import tensorflow as tf

    from kfuse.ensemble import BaggingClassifier

    data = tf.data.Dataset.from_tensor_slices((X, Y)).batch(5)
    x, y = checked_xy(data, None, WHERE)
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(y, Y)
    with pytest.raises(ValueError, match="pass y inside the tf.data.Dataset, not as y="):
        checked_xy(data, Y, WHERE)
    weighted = tf.data.Dataset.from_tensor_slices((X, Y, np.ones(12))).batch(5)
    with pytest.raises(ValueError, match=r"yields \(x, y, sample_weight\); an ensemble weights the rows itself"):
        checked_xy(weighted, None, WHERE)

    def net():
        return keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])

    settings = dict(n_estimators=1, epochs=1, batch_size=4, random_state=0)
    from_arrays = BaggingClassifier(net, **settings).fit(X, Y).predict_proba(X)
    from_dataset = BaggingClassifier(net, **settings).fit(data).predict_proba(X)
    np.testing.assert_array_equal(from_dataset, from_arrays)
