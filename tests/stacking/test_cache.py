"""Frozen branches: outputs cached once, the head trained on the cache, one graph back."""

import warnings

import numpy as np
import pytest

import kfuse
from tests.stacking import accuracy, blobs, trained_model


@pytest.fixture(scope="module")
def frozen_data():
    x, y = blobs(120, seed=0)
    x_test, y_test = blobs(60, seed=1)
    a = trained_model("a", x, y, epochs=15, seed=0)
    b = trained_model("b", x, y, epochs=15, seed=1, hidden=8)
    return x, y, x_test, y_test, a, b


def frozen(a, b, **kwargs):
    return [
        kfuse.Branch(a, name="a", inputs="signal", trainable=False, **kwargs),
        kfuse.Branch(b, name="b", inputs="signal", trainable=False, **kwargs),
    ]


def test_cached_features_are_the_graph_branch_outputs(frozen_data, capsys):
    x, y, x_test, y_test, a, b = frozen_data
    stacker = kfuse.Stacker(frozen(a, b), head=3, cv=2, verbose=0, meta_fit={"epochs": 40}).fit(
        x, y
    )
    assert capsys.readouterr().out == ""  # verbose=0 is silent
    assert stacker.oof_predictions_ == {}  # nothing was trained per fold
    branch_outputs = stacker.model_.branch_outputs(x)
    for name in ("a", "b"):
        np.testing.assert_allclose(stacker.features_[name], branch_outputs[name], atol=1e-5)
    np.testing.assert_allclose(stacker.features_["a"], a.predict(x, verbose=0), atol=1e-5)
    assert accuracy(stacker.predict(x_test), y_test) > 0.85
    # the bases in the graph kept their weights
    for got, want in zip(stacker.model_.branch("a").get_weights(), a.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_cache_and_graph_training_reach_the_same_head(frozen_data):
    """Same seed, same batches: the head trained on cached features equals the head
    trained through the frozen graph."""
    x, y, x_test, _, a, b = frozen_data
    settings = {"head": 3, "cv": 2, "verbose": 0, "meta_fit": {"epochs": 5, "batch_size": 32}}
    cached = kfuse.Stacker(frozen(a, b), cache=True, **settings).fit(x, y)
    through = kfuse.Stacker(frozen(a, b), cache=False, **settings).fit(x, y)
    np.testing.assert_allclose(cached.predict(x_test), through.predict(x_test), atol=1e-4)


def test_tapped_features_with_passthrough(frozen_data, tmp_path):
    x, y, x_test, y_test, a, b = frozen_data
    stacker = kfuse.Stacker(
        frozen(a, b, tap="hidden"),
        head=3,
        cv=2,
        passthrough=True,
        meta=(16,),
        verbose=0,
        meta_fit={"epochs": 40},
    ).fit(x, y)
    assert stacker.methods_ == {"a": "features", "b": "features"}
    assert stacker.features_["a"].shape == (120, 16) and stacker.features_["b"].shape == (120, 8)
    assert stacker.model_.kfuse_info["passthrough"] is True
    assert accuracy(stacker.predict(x_test), y_test) > 0.85
    from tests.helpers import assert_round_trip

    assert_round_trip(stacker.model_, x_test, tmp_path)


def test_prefit_uses_trained_bases_as_they_are(frozen_data):
    x, y, x_test, y_test, a, b = frozen_data
    branches = [
        kfuse.Branch(a, name="a", inputs="signal"),
        kfuse.Branch(b, name="b", inputs="signal"),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stacker = kfuse.Stacker(
            branches, head=3, cv="prefit", verbose=0, meta_fit={"epochs": 40}, strategy="default"
        )
        stacker.fit(x, y)
    assert any("leak" in str(w.message) for w in caught)
    np.testing.assert_allclose(
        stacker.model_.branch_outputs(x_test)["b"], b.predict(x_test, verbose=0), atol=1e-5
    )
    assert accuracy(stacker.predict(x_test), y_test) > 0.85
