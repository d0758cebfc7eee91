"""The bad inputs of issue 5: each a clear error (or, for one model, 'not applicable')."""

import keras
import numpy as np
import pytest

import kfuse


def test_models_disagree_on_number_of_classes():
    y = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"disagree on the number of classes.*'a': 2.*'b': 3"):
        kfuse.compare({"a": np.eye(2)[y], "b": np.eye(3)[y]}, y=y)


def test_labels_the_models_never_output():
    with pytest.raises(ValueError, match=r"classes \[3, 4\] that the models never output.*3 classes"):
        kfuse.compare({"a": np.eye(3)[[0, 1, 2, 0]]}, y=np.array([0, 3, 4, 1]))


def test_empty_data():
    with pytest.raises(ValueError, match="empty data"):
        kfuse.compare({"a": np.zeros((0, 3))}, y=np.zeros(0, int))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="empty data"):
        kfuse.compare({"m": model}, np.zeros((0, 4), "float32"), np.zeros(0, int))
    with pytest.raises(ValueError, match="non-empty dict"):
        kfuse.compare({}, y=np.array([0, 1]))


def test_regression_metrics_asked_of_a_classifier():
    y = np.array([0, 1, 2, 1])
    proba = np.eye(3)[y]
    with pytest.raises(ValueError, match="regression metric 'mae' asked of a classification task"):
        kfuse.compare({"clf": proba}, y=y, metrics=["accuracy", "mae"])
    with pytest.raises(ValueError, match="regression metrics asked of a classifier: model 'clf' outputs 3"):
        kfuse.compare({"clf": proba}, y=y, task="regression")
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        kfuse.compare({"clf": proba}, y=y, metrics=["auc"])


def test_regression_task_refuses_a_kfuse_classifier():
    base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    fused = kfuse.stack([kfuse.Branch(base, name="a", inputs="x")], fusion=None, head=3)
    with pytest.raises(ValueError, match="regression metrics asked of a classifier"):
        kfuse.compare({"fused": fused}, np.zeros((4, 4), "float32"), np.array([0.5, 1.5, 2.0, 0.1]),
                      task="regression")


def test_prediction_length_differs_from_y():
    with pytest.raises(ValueError, match=r"model 'short' gives 3 predictions but `y` has 4 labels"):
        kfuse.compare({"ok": np.eye(2)[[0, 1, 0, 1]], "short": np.eye(2)[[0, 1, 0]]}, y=np.array([0, 1, 0, 1]))


def test_single_model_is_not_a_crash():
    y = np.array([0, 1, 1, 0, 1])
    report = kfuse.compare({"solo": np.eye(2)[[0, 1, 0, 0, 1]]}, y=y)
    assert report.diversity.reason.startswith("not applicable")
    assert "roc" in report.figures() and "diversity" not in report.figures()


def test_other_errors_name_the_problem():
    y = np.array([0, 1])
    with pytest.raises(ValueError, match="`task` must be one of"):
        kfuse.compare({"a": np.eye(2)}, y=y, task="ranking")
    with pytest.raises(ValueError, match="reference 'c' is not one of the models"):
        kfuse.compare({"a": np.eye(2), "b": np.eye(2)}, y=y, reference="c")
    with pytest.raises(TypeError, match="model 'a' is a str"):
        kfuse.compare({"a": "model.keras"}, y=y)
    with pytest.raises(ValueError, match="labels `y` are required"):
        kfuse.compare({"a": np.eye(2)})
    with pytest.raises(ValueError, match="needs inputs `x`"):
        kfuse.compare({"m": keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])}, y=y)
    with pytest.raises(ValueError, match="need a regression task"):
        kfuse.compare({"a": np.eye(2)}, y=y).plot_residuals()
