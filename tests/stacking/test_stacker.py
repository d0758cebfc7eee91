"""The Stacker's core: out-of-fold predictions, refit, fold averaging, one saved graph."""

import keras
import numpy as np
import pytest

import kfuse
from tests.helpers import assert_round_trip
from tests.stacking import accuracy, blobs, small_model

FIT = {"epochs": 8, "batch_size": 16, "learning_rate": 1e-2}


@pytest.fixture(scope="module")
def data():
    x, y = blobs(120, seed=0)
    x_test, y_test = blobs(60, seed=1)
    return x, y, x_test, y_test


@pytest.fixture(scope="module")
def fitted(data):
    """Two branches (a model and a fresh callable), 2 folds, refit on all rows."""
    x, y, _, _ = data
    keras.utils.set_random_seed(0)
    branches = [
        kfuse.Branch(small_model("mlp"), name="mlp", inputs="signal", fit=FIT),
        kfuse.Branch(
            lambda t: keras.layers.Dense(8, activation="relu")(t),
            name="fresh",
            inputs="signal",
            fit=FIT,
        ),
    ]
    stacker = kfuse.Stacker(branches, head=3, cv=2, verbose=0, meta_fit={"epochs": 60})
    return stacker.fit(x, y)


@pytest.mark.slow
def test_out_of_fold_predictions_and_scores(fitted, data):
    x, y, _, _ = data
    assert set(fitted.oof_predictions_) == {"mlp", "fresh"}
    for name, oof in fitted.oof_predictions_.items():
        assert oof.shape == (120, 3), name
        assert np.all(np.isfinite(oof))
        np.testing.assert_allclose(oof.sum(-1), 1.0, atol=1e-5)  # probabilities
        assert accuracy(oof, y) > 0.8, name
    assert fitted.cv_metric_ == "accuracy"
    assert {k: len(v) for k, v in fitted.cv_scores_.items()} == {"mlp": 2, "fresh": 2}
    assert min(min(v) for v in fitted.cv_scores_.values()) > 0.8
    np.testing.assert_array_equal(fitted.oof_rows_, np.arange(120))
    assert fitted.fit_time_ > 0


@pytest.mark.slow
def test_one_graph_that_predicts_saves_and_reloads(fitted, data, tmp_path):
    _, _, x_test, y_test = data
    model = fitted.model_
    assert isinstance(model, kfuse.FusedModel)
    assert model.branch_names == ["mlp", "fresh"]
    assert model.kfuse_info["stacker"]["stack_method"] == {
        "mlp": "predict_proba",
        "fresh": "predict_proba",
    }
    logits = fitted.decision_function(x_test)
    np.testing.assert_array_equal(fitted.predict(x_test), logits.argmax(-1))
    assert logits.shape == (60, 3)
    assert accuracy(logits, y_test) > 0.85
    np.testing.assert_allclose(fitted.predict_proba(x_test).sum(-1), 1.0, atol=1e-5)
    result = fitted.evaluate({"signal": x_test}, y_test)
    assert result["accuracy"] > 0.85 and "loss" in result
    loaded = assert_round_trip(model, x_test, tmp_path)
    assert loaded.branch_names == ["mlp", "fresh"]


@pytest.mark.slow
def test_refit_bases_are_in_the_graph(fitted, data):
    x, _, _, _ = data
    assert set(fitted.base_models_) == {"mlp", "fresh"}
    expected = fitted.base_models_["mlp"].predict(x, verbose=0)
    np.testing.assert_allclose(fitted.model_.branch_outputs(x)["mlp"], expected, atol=1e-5)
    assert not fitted.model_.branch("mlp").trainable


@pytest.mark.slow
def test_no_leak_on_labels_a_base_can_memorise():
    """Random labels: a wide base memorises its training rows; its out-of-fold
    predictions must stay at chance, its predictions on its own rows must not."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 40)).astype("float32")
    y = rng.integers(0, 3, 60)
    memoriser = small_model("wide", width=40, hidden=256)
    fit = {"epochs": 40, "batch_size": 10, "learning_rate": 1e-2}
    branch = kfuse.Branch(memoriser, name="wide", inputs="signal", fit=fit)
    stacker = kfuse.Stacker([branch], head=3, cv=2, refit=False, verbose=0, meta_fit={"epochs": 2})
    stacker.fit(x, y)
    plan = kfuse.stacking.folds.resolve_cv(2, y, stacker.head_, seed=0)
    for (train_rows, _), model in zip(plan.splits, stacker.fold_models_["wide"], strict=True):
        own = model.predict(x[train_rows], verbose=0)
        assert accuracy(own, y[train_rows]) > 0.95  # memorised its own rows
    assert accuracy(stacker.oof_predictions_["wide"], y) < 0.6  # out-of-fold: chance


@pytest.mark.slow
def test_refit_false_averages_the_fold_models_in_the_graph(data, capfd):
    x, y, x_test, y_test = data
    branch = kfuse.Branch(small_model("mlp"), name="mlp", inputs="signal", fit=FIT)
    stacker = kfuse.Stacker([branch], head=3, cv=2, refit=False, verbose=1, meta_fit={"epochs": 30})
    stacker.fit(x, y)
    assert "fold" in capfd.readouterr().out  # the progress bar
    folds = stacker.fold_models_["mlp"]
    assert len(folds) == 2 and stacker.base_models_ == {}
    mean = np.mean([m.predict(x_test, verbose=0) for m in folds], axis=0)
    np.testing.assert_allclose(stacker.model_.branch_outputs(x_test)["mlp"], mean, atol=1e-5)
    inner = [layer.name for layer in stacker.model_.branch("mlp").layers]
    assert "mlp_fold0" in inner and "mlp_fold1" in inner
    assert accuracy(stacker.predict(x_test), y_test) > 0.85


@pytest.mark.slow
def test_holdout_blending_with_logits(data):
    x, y, x_test, y_test = data
    branch = kfuse.Branch(small_model("mlp"), name="mlp", inputs="signal", fit=FIT)
    stacker = kfuse.Stacker(
        [branch],
        head=3,
        cv=0.25,
        refit=False,
        stack_method="logits",
        verbose=0,
        meta_fit={"epochs": 30},
    ).fit(x, y)
    assert len(stacker.oof_rows_) == 30
    oof = stacker.oof_predictions_["mlp"]
    assert np.isnan(oof).all(axis=1).sum() == 90  # rows the bases trained on: no OOF
    assert not np.allclose(oof[stacker.oof_rows_].sum(-1), 1.0)  # logits, not probabilities
    assert stacker.cv_scores_["mlp"][0] > 0.8
    assert accuracy(stacker.predict(x_test), y_test) > 0.85


def test_a_frozen_callable_reads_each_input_by_its_name(data):
    """A frozen two-input callable whose input names are not in sorted order: each input
    reaches the layer it was built for (its cached meta-features are the callable's
    outputs on the right columns)."""
    x, y, _, _ = data

    def two(t):  # "wide" and "narrow" go to layers of their own widths
        return keras.layers.Dense(3, activation="softmax")(
            keras.layers.Concatenate()([keras.layers.Dense(2)(t["wide"]), t["narrow"]]))

    inputs = {"wide": x[:, :6], "narrow": x[:, 6:]}
    branch = kfuse.Branch(two, name="two", inputs=["wide", "narrow"], trainable=False)
    stacker = kfuse.Stacker([branch], head=3, cv=2, verbose=0, selection="meta", meta_fit={"epochs": 1})
    stacker.fit(inputs, y)
    built = stacker.model_.branch("two")
    own = built.predict([inputs["wide"], inputs["narrow"]], verbose=0)
    np.testing.assert_allclose(stacker.features_["two"], own, rtol=1e-5, atol=1e-6)
    assert stacker.predict_proba(inputs).shape == (len(y), 3)


def test_a_frozen_branch_keeps_its_pool():
    """`Branch(..., pool="mean", trainable=False)` in a Stacker: the graph and the cached
    meta-features pool the base's sequence output, as `kfuse.stack` does."""
    inp = keras.Input((4, 3), name="seq")
    base = keras.Model(inp, keras.layers.Dense(5)(inp))
    x = np.random.default_rng(0).normal(size=(40, 4, 3)).astype("float32")
    y = np.arange(40) % 2
    branch = kfuse.Branch(base, name="pooled", pool="mean", trainable=False)
    stacker = kfuse.Stacker([branch], head=2, cv=2, verbose=0, stack_method="raw", selection="meta",
                            meta_fit={"epochs": 1})
    stacker.fit(x, y)
    own = base.predict(x, verbose=0).mean(axis=1)
    np.testing.assert_allclose(stacker.features_["pooled"], own, rtol=1e-5, atol=1e-6)
    assert stacker.predict_proba(x).shape == (40, 2)
