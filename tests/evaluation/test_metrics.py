"""Scores match scikit-learn; conversions (logits, one logit, hard labels) are exact and noted."""

import numpy as np
import pytest
from sklearn import metrics as skm

import kfuse
from kfuse.evaluation.metrics import expected_calibration_error
from kfuse.evaluation.predictions import softmax


@pytest.fixture
def three_class(rng):
    y = rng.integers(0, 3, 300)
    proba = rng.dirichlet(np.ones(3), 300)
    proba[np.arange(150), y[:150]] += 2.0  # half the rows lean to the truth
    return y, proba / proba.sum(1, keepdims=True)


def test_classification_scores_equal_sklearn(three_class):
    y, proba = three_class
    table = kfuse.compare({"m": proba}, y=y).table
    pred = proba.argmax(1)
    assert table.loc["m", "accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert table.loc["m", "balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert table.loc["m", "f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert table.loc["m", "precision_weighted"] == pytest.approx(skm.precision_score(y, pred, average="weighted"))
    assert table.loc["m", "recall_macro"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert table.loc["m", "roc_auc_ovr"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert table.loc["m", "log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert table.loc["m", "brier"] == pytest.approx(skm.brier_score_loss(y, proba, labels=[0, 1, 2]))
    assert 0.0 <= table.loc["m", "ece"] <= 1.0


def test_ece_known_values():
    y = np.array([0, 0, 1, 1])
    # all rows 0.8 confident in class 0: accuracy 0.5 in that bin -> ECE 0.3
    proba = np.tile([0.8, 0.2], (4, 1))
    assert expected_calibration_error(y, proba) == pytest.approx(0.3)
    perfect = np.eye(2)[y]
    assert expected_calibration_error(y, perfect) == pytest.approx(0.0)


def test_logits_are_softmaxed_and_noted(three_class):
    y, proba = three_class
    logits = np.log(proba) + 3.0  # same softmax, rows do not sum to one
    report = kfuse.compare({"logits": logits, "proba": proba}, y=y)
    np.testing.assert_allclose(report.predictions["logits"].values, proba, atol=1e-9)
    assert report.table.loc["logits", "log_loss"] == pytest.approx(report.table.loc["proba", "log_loss"])
    assert any("'logits' outputs logits" in n and "softmax" in n for n in report.notes)
    assert not any("'proba'" in n for n in report.notes)
    np.testing.assert_allclose(softmax(np.array([[0.0, 0.0]])), [[0.5, 0.5]])


def test_binary_single_column_probabilities_and_logits():
    y = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    p = np.array([0.2, 0.9, 0.6, 0.4, 0.7, 0.1, 0.3, 0.8])
    logit = np.log(p / (1 - p))
    report = kfuse.compare({"p": p, "logit": logit[:, None]}, y=y)
    assert report.task == "classification"
    np.testing.assert_allclose(report.predictions["logit"].values[:, 1], p)
    assert report.table.loc["p", "accuracy"] == pytest.approx(7 / 8)
    assert report.table.loc["p", "roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert any("sigmoid" in n for n in report.notes)


def test_hard_labels_become_one_hot():
    y = np.array([0, 1, 2, 2, 1])
    report = kfuse.compare({"hard": np.array([0, 1, 2, 1, 1])}, y=y)
    assert report.table.loc["hard", "accuracy"] == pytest.approx(0.8)
    assert any("hard labels" in n for n in report.notes)


def test_one_hot_labels_accepted(three_class):
    y, proba = three_class
    table = kfuse.compare({"m": proba}, y=np.eye(3)[y]).table
    assert table.loc["m", "accuracy"] == pytest.approx(np.mean(proba.argmax(1) == y))


def test_regression_scores_equal_sklearn(rng):
    y = rng.normal(size=200) + 5.0
    pred = y + rng.normal(size=200) * 0.5
    report = kfuse.compare({"r": pred, "column": pred[:, None]}, y=y)
    assert report.task == "regression"
    for name in ("r", "column"):
        row = report.table.loc[name]
        assert row["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
        assert row["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
        assert row["r2"] == pytest.approx(skm.r2_score(y, pred))
        assert row["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred))


def test_metric_subset_and_absent_class_auc(rng):
    y = np.array([0, 1, 0, 1, 0, 1])  # class 2 never occurs
    proba = rng.dirichlet(np.ones(3), 6)
    report = kfuse.compare({"m": proba}, y=y, metrics=["accuracy", "roc_auc_ovr"])
    assert list(report.table.columns) == ["accuracy", "roc_auc_ovr"]
    assert np.isfinite(report.table.loc["m", "roc_auc_ovr"])
    assert any("classes present" in n for n in report.notes)
