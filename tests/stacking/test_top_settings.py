"""The selection and the data step work from what they are given (a `TopSettings`, the
user's data), not from a Stacker."""

import keras
import numpy as np
import pytest

import kfuse
from kfuse.stacking import selection
from kfuse.stacking.data import read_data
from kfuse.stacking.settings import TopSettings, check_meta_fit


def _members():
    def base(name):
        return keras.Sequential(
            [keras.Input((4,), name="signal"), keras.layers.Dense(3, activation="softmax")],
            name=name,
        )

    return (
        kfuse.Branch(base("a"), name="a", trainable=False),
        kfuse.Branch(base("b"), name="b", trainable=False),
    )


def test_a_forced_choice_needs_only_its_settings():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=60)
    good = 0.6 * np.eye(3)[y] + 0.4 * rng.dirichlet(np.ones(3), size=60)  # mostly right
    noise = rng.dirichlet(np.ones(3), size=60)
    branches = _members()
    settings = TopSettings(
        kfuse.layers.heads.Classification(3),
        check_meta_fit(None),
        seed=0,
        cv=3,
        selection="caruana",
        branches=branches,
        methods={"a": "predict_proba", "b": "predict_proba"},
    )
    rows = np.arange(60)
    choice = selection.choose(settings, None, {}, {"a": good, "b": noise}, {}, y, rows)
    expected = selection.member_weights(settings.head, [good, noise], y, selection.ENSEMBLE_SIZE)
    assert choice.selection == "caruana" and choice.metric == "accuracy"
    assert choice.weights == pytest.approx(dict(zip("ab", expected, strict=True)))
    assert choice.weights["a"] > choice.weights["b"]


def test_fit_settings_resolve_the_auto_batch_size():
    settings = TopSettings(
        kfuse.layers.heads.Regression(1), check_meta_fit({"class_weight": None}), seed=0, cv=5
    )
    assert settings.fit_settings(3200)["batch_size"] == 200  # rows // 16
    assert settings.fit_settings(100)["batch_size"] == 16
    assert "class_weight" not in settings.fit_settings(100)  # None settings are dropped


def test_the_data_is_read_once_and_checked_against_the_branches():
    branches = _members()
    head = kfuse.layers.heads.Classification(3)
    x = np.zeros((6, 4), "float32")
    data = read_data(branches, head, {"signal": x}, np.arange(6) % 3, sample_weight=np.ones(6))
    assert data.shapes == {"signal": (4,)} and data.rows == 6 and data.sample_weight.shape == (6,)
    with pytest.raises(
        ValueError, match=r"Branch 'a': input 'signal' expects shape \(4,\).*has \(5,\)"
    ):
        read_data(branches, head, {"signal": np.zeros((6, 5), "float32")}, np.arange(6) % 3)
    with pytest.raises(ValueError, match="labels do not fit the head"):
        read_data(branches, head, x, np.arange(6))  # class 3..5 for a 3-class head
