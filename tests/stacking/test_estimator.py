"""`kfuse.Stacker` keeps scikit-learn's estimator contract."""

import random

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score

import kfuse
from tests.stacking import accuracy, blobs, trained_model


@pytest.fixture(scope="module")
def data():
    x, y = blobs(150, spread=1.2, seed=4)
    bases = [trained_model("a", x[:60], y[:60], epochs=8, seed=1), trained_model("b", x[:60], y[:60], epochs=4, seed=2)]
    return x[60:], y[60:], bases


def make(bases, **kwargs):
    branches = [kfuse.Branch(m, name=m.name, inputs="signal", trainable=False) for m in bases]
    settings = {"cv": "prefit", "verbose": 0, "meta_fit": {"epochs": 15}, **kwargs}
    return kfuse.Stacker(branches, head=3, **settings)


def test_init_stores_arguments_unchanged_and_params_round_trip(data):
    _, _, bases = data
    branches = [kfuse.Branch(m, name=m.name, inputs="signal", trainable=False) for m in bases]
    meta_fit = {"epochs": 3}
    stacker = kfuse.Stacker(branches, head=3, cv=2, meta_fit=meta_fit, passthrough=0, random_state=7)
    assert stacker.branches is branches and stacker.head == 3 and stacker.meta_fit is meta_fit
    assert stacker.passthrough == 0 and stacker.random_state == 7
    params = stacker.get_params()
    assert params["cv"] == 2 and params["branches"] is branches and params["random_state"] == 7
    assert stacker.set_params(cv=3, meta_fit={"epochs": 1}) is stacker and stacker.cv == 3
    assert not any(k.endswith("_") for k in vars(stacker))  # nothing derived before fit
    with pytest.raises(NotFittedError):
        stacker.predict(np.zeros((2, 8), "float32"))
    copy = clone(stacker)
    assert copy is not stacker and copy.get_params()["cv"] == 3


def test_predict_labels_proba_decision_function_and_score(data):
    x, y, bases = data
    stacker = make(bases).fit(x, y)
    logits = stacker.decision_function(x)
    assert logits.shape == (90, 3)
    np.testing.assert_array_equal(stacker.predict(x), logits.argmax(-1))
    proba = stacker.predict_proba(x)
    np.testing.assert_allclose(proba.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(proba.argmax(-1), stacker.predict(x))
    assert stacker.score(x, y) == pytest.approx(accuracy(logits, y)) and stacker.score(x, y) > 0.8
    np.testing.assert_array_equal(stacker.classes_, [0, 1, 2])


def test_binary_predict_proba_has_two_columns(data):
    x, y, _ = data
    yb = (y == 0).astype("int64")
    base = trained_model("bin", x, yb, epochs=5, classes=2)
    stacker = kfuse.Stacker([kfuse.Branch(base, name="bin", inputs="signal", trainable=False)],
                            head=kfuse.layers.heads.Binary(), cv="prefit", verbose=0, meta_fit={"epochs": 5})  # fmt: skip
    stacker.fit(x, yb)
    proba = stacker.predict_proba(x)
    assert proba.shape == (90, 2)
    np.testing.assert_allclose(proba.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(stacker.predict(x), (proba[:, 1] > 0.5).astype(int))


def test_random_state_leaves_the_callers_random_numbers_alone(data):
    x, y, bases = data
    np.random.seed(11)
    random.seed(11)
    expected = (np.random.rand(3), random.random())
    np.random.seed(11)
    random.seed(11)
    first = make(bases, random_state=5).fit(x, y)
    assert (np.random.rand(3) == expected[0]).all() and random.random() == expected[1]
    second = make(bases, random_state=5).fit(x, y)
    np.testing.assert_allclose(first.decision_function(x), second.decision_function(x), atol=1e-6)
    assert first.seed_ == 5


def test_sample_weight_and_class_weight_reach_the_head(data):
    x, y, bases = data
    meta = {"selection": "meta"}  # the learned head (auto may pick fixed member weights)
    plain = make(bases, meta_fit={"epochs": 20, "learning_rate": 0.1}, **meta).fit(x, y)
    weights = np.where(y == 1, 0.0, 1.0)
    weighted = make(bases, meta_fit={"epochs": 20, "learning_rate": 0.1}, **meta).fit(x, y, sample_weight=weights)
    by_class = make(bases, meta_fit={"epochs": 20, "learning_rate": 0.1, "class_weight": {0: 1.0, 1: 0.0, 2: 1.0}}, **meta)
    by_class.fit(x, y)
    ones = lambda s: int(np.sum(s.predict(x) == 1))  # noqa: E731
    assert ones(weighted) < ones(plain) and ones(by_class) < ones(plain)


@pytest.mark.slow
def test_clone_and_cross_val_score(data):
    x, y, bases = data
    scores = cross_val_score(make(bases, meta_fit={"epochs": 5}), x, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.7
