"""Issue 34, compare(): no model fed an input it does not read, ensembles on labels 1..3
and regressors scored right, a classifier beside a regressor refused, and a self-check that
alarms only where a branch was meant to equal its base."""

import keras
import numpy as np
import pytest
from sklearn.metrics import r2_score

import kfuse
from kfuse.ensemble import AdaBoostRegressor, BaggingClassifier
from kfuse.evaluation.self_check import drift_notes, expected_difference


def _x(n=40, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 4)).astype("float32")


def _net(name="x", units=2, activation="softmax", seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((4,), name=name)
    return keras.Model(inp, keras.layers.Dense(units, activation=activation)(inp))


def _labels(x):
    return (x[:, 0] > 0).astype(int)


# --- inputs ---------------------------------------------------------------------------------

def test_compare_refuses_data_lacking_the_models_input_name():
    x = _x()
    with pytest.raises(ValueError, match=r"model 'a' reads inputs \['signal'\]; the data lacks "
                                         r"\['signal'\] \(received keys \['other'\]\)"):
        kfuse.compare({"a": _net("signal")}, {"other": x}, _labels(x))


def test_compare_names_the_model_whose_input_is_missing_and_the_closest_key():
    x = _x()
    models = {"a": _net("signal"), "b": _net("signals", seed=1)}
    with pytest.raises(ValueError, match=r"model 'b' reads inputs \['signals'\].*did you mean "
                                         r"'signal' for 'signals'"):
        kfuse.compare(models, {"signal": x}, _labels(x))


def test_compare_one_array_still_feeds_single_input_models():
    x = _x()
    model = _net("signal")
    report = kfuse.compare({"a": model}, x, _labels(x))
    expected = np.mean(model.predict(x, verbose=0).argmax(1) == _labels(x))
    assert np.isclose(report.table.loc["a", "accuracy"], expected)


# --- ensembles and tasks ----------------------------------------------------------------------

def _bagging(x, y):
    def build():
        return _net(units=3)

    return BaggingClassifier(build, n_estimators=2, fit_params={"epochs": 1},
                             random_state=0).fit(x, y)


@pytest.fixture(scope="module")
def one_to_three():
    x = _x(60)
    y = 1 + (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)  # labels 1, 2, 3
    return x, y, _bagging(x, y)


def test_compare_scores_an_ensemble_fitted_on_labels_one_to_three(one_to_three):
    x, y, bag = one_to_three
    assert list(bag.classes_) == [1, 2, 3]
    report = kfuse.compare({"bag": bag}, x, y)
    assert np.isclose(report.table.loc["bag", "accuracy"], np.mean(bag.predict(x) == y))
    np.testing.assert_array_equal(report.y, y - 1)  # the probability column of each label


def test_compare_refuses_labels_the_ensemble_never_saw(one_to_three):
    x, y, bag = one_to_three
    with pytest.raises(ValueError, match=r"the labels hold \[4\], which model 'bag' never saw "
                                         r"\(its classes_ are \[1, 2, 3\]\)"):
        kfuse.compare({"bag": bag}, x, np.where(y == 3, 4, y))


def test_compare_refuses_a_classifier_beside_a_regressor(one_to_three):
    x, y, bag = one_to_three
    regressor = _net(units=1, activation=None)
    with pytest.raises(ValueError, match=r"model 'bag' is a classifier \(3 class probabilities "
                                         r"per row\) but 'reg' is a regressor"):
        kfuse.compare({"bag": bag, "reg": regressor}, x, y)


def test_compare_scores_an_adaboost_regressor():
    x = _x(48)
    y = (2 * x[:, 0] + 0.5).astype("float32")

    def build():
        return _net(units=1, activation=None)

    ada = AdaBoostRegressor(build, n_estimators=2, fit_params={"epochs": 1},
                            random_state=0).fit(x, y)
    report = kfuse.compare({"ada": ada}, x, y)
    assert report.task == "regression"
    assert np.isclose(report.table.loc["ada", "r2"], r2_score(y, ada.predict(x)), atol=1e-6)


# --- self-check -------------------------------------------------------------------------------

def test_self_check_describes_a_branch_the_stacker_trained_on_folds():
    x = _x(30)
    y = _labels(x)
    base = _net()
    stacker = kfuse.Stacker([kfuse.Branch(base, name="net", output="probabilities")], head=2,
                            cv=2, refit=False, verbose=0).fit(x, y)
    assert stacker.model_.kfuse_info["stacker"]["trained"] == ["net"]
    report = kfuse.compare({"net": base, "stacked": stacker}, x, y)
    assert report.branch_drift["stacked"]["net"] > 1e-3  # the fold average is another network
    notes = [n for n in report.notes if n.startswith("self-check")]
    assert len(notes) == 1 and "trained by the Stacker on folds (refit=False" in notes[0]
    assert "not expected to equal the base" in notes[0] and "lost state" not in notes[0]


def test_self_check_alarms_only_for_a_frozen_copy():
    frozen = kfuse.stack([kfuse.Branch(_net(), name="net", trainable=False)], head=2)
    trainable = kfuse.stack([kfuse.Branch(_net(), name="net")], head=2)
    assert expected_difference(frozen, "net") is None
    assert "trainable" in expected_difference(trainable, "net")
    notes = drift_notes({"frozen": {"net": 0.5}, "tuned": {"net": 0.5}},
                        {"frozen": frozen, "tuned": trainable})
    assert "lost state" in notes[0] and "rebuild the fused model" in notes[0]
    assert "lost state" not in notes[1] and "not expected to equal the base" in notes[1]
