"""The one place kfuse reads outputs and labels: probabilities, class ids, scores, checked
against independent computations (Python's math on every value; numpy written out)."""

import math

import numpy as np
import pytest

from kfuse.utils.outputs import class_ids, row_scores, score, sigmoid, softmax, to_probabilities


def _math_sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def test_sigmoid_equals_the_definition_and_never_overflows():
    z = np.array(
        [-745.0, -700.0, -40.0, -3.5, -1e-9, 0.0, 1e-9, 2.25, 40.0, 700.0, 1000.0, np.inf, -np.inf]
    )
    with np.errstate(over="raise", invalid="raise"):  # no overflow, no invalid value on any of them
        p = sigmoid(z)
    expected = [_math_sigmoid(v) if np.isfinite(v) else float(v > 0) for v in z]
    np.testing.assert_allclose(p, expected, rtol=1e-13, atol=1e-16)
    assert sigmoid(np.float32(-100.0)).dtype == np.float32 and sigmoid(np.float32(-100.0)) == 0.0
    assert to_probabilities(np.array([[-1000.0], [0.0]]), "sigmoid").tolist() == [[0.0], [0.5]]


def test_softmax_equals_the_definition_without_overflow():
    rng = np.random.default_rng(0)
    z = rng.normal(scale=3.0, size=(20, 5))
    expected = np.array([[math.exp(v) / sum(math.exp(u) for u in row) for v in row] for row in z])
    np.testing.assert_allclose(softmax(z), expected, rtol=1e-12)
    with np.errstate(over="raise", invalid="raise"):
        big = to_probabilities(np.array([[1000.0, 0.0, -1000.0]]), "softmax")
    np.testing.assert_array_equal(big, [[1.0, 0.0, 0.0]])


def test_to_probabilities_keeps_float64_and_computes_the_rest_in_float32():
    logits = np.array([[0.5, -0.5]])
    assert to_probabilities(logits, "softmax").dtype == np.float64
    assert to_probabilities(logits.astype("float16"), "softmax").dtype == np.float32
    assert to_probabilities(np.array([[3]]), "sigmoid").dtype == np.float32
    with pytest.raises(ValueError, match="Regression.*no probabilities.*None"):
        to_probabilities(logits, None, where="Regression(1)")


def test_class_ids_from_ids_columns_and_one_hot_rows():
    ids = np.array([2, 0, 1, 2])
    for labels in (ids, ids.reshape(-1, 1), np.eye(3)[ids], np.eye(3, dtype="float32")[ids]):
        np.testing.assert_array_equal(class_ids(labels), ids)
    np.testing.assert_array_equal(class_ids([[0.1, 0.7, 0.2]]), [1])


def test_row_scores_and_score_against_numpy_written_out():
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(3), size=30)
    y = rng.integers(0, 3, size=30)
    w = rng.uniform(0.5, 2.0, size=30)
    right = np.array([float(np.argmax(p) == t) for p, t in zip(proba, y, strict=True)])
    np.testing.assert_array_equal(row_scores("softmax", proba, y), right)
    assert score("softmax", proba, np.eye(3)[y], w) == pytest.approx(np.sum(right * w) / np.sum(w))

    values, target = rng.normal(size=(30, 2)), rng.normal(size=(30, 2))
    squared = ((values - target) ** 2).mean(axis=1)
    np.testing.assert_allclose(row_scores(None, values, target), squared)
    assert score(None, values, target) == pytest.approx(squared.mean())

    units = rng.uniform(size=(30, 4))
    labels = (rng.uniform(size=(30, 4)) > 0.5).astype("float32")
    agree = ((units > 0.5) == (labels > 0.5)).mean(axis=1)
    np.testing.assert_allclose(row_scores("sigmoid", units, labels), agree)
    logits = np.log(units) - np.log1p(-units)  # the same decisions, read at threshold 0
    assert score("sigmoid", logits, labels, threshold=0.0) == pytest.approx(agree.mean())
