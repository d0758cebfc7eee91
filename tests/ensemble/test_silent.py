"""Nothing silent, part two (issue 34): the ensembles' bad inputs, work_dirs and labels.

Each test here failed on 0.2.0: stale members loaded from a work_dir whose builder
changed, refusals that did not name the setting, damaged files reported without path or
remedy, NaN / inf data trained on, float and string labels mistaken, learning rates of
zero accepted, a mistyped weighting method taken as uniform, `ValueError` for estimators
not fitted.
"""

import json
import os

import keras
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import kfuse
from kfuse.ensemble import (
    SWA,
    AdaBoostClassifier,
    AdaBoostRegressor,
    BaggingClassifier,
    BaggingRegressor,
    FastGeometricEnsemble,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    SnapshotEnsemble,
    WeightedEnsemble,
)
from kfuse.utils.run_store import DamagedCheckpointError

RNG = np.random.default_rng(0)
X = RNG.normal(size=(100, 4)).astype("float32")
Y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)  # three classes 0, 1, 2
R = (X[:, 0] + 0.5 * X[:, 1]).astype("float32")  # a regression target


def builder(width=8, classes=3, activation="softmax"):
    """The same qualified name (`builder.<locals>.build`) for every width: only the
    network it builds tells two of them apart."""

    def build():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(width, activation="relu"),
                                 keras.layers.Dense(classes, activation=activation)])

    return build


def regressor():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])


def bagging(work_dir, width=8, **settings):
    settings = {"n_estimators": 1, "fit_params": {"epochs": 1}, "random_state": 0, **settings}
    return BaggingClassifier(builder(width), work_dir=str(work_dir), **settings)


def weights_of(models):
    return [w for m in models for w in m.get_weights()]


# -- stale work on resume -------------------------------------------------------------------
def test_changed_builder_width_is_refused_not_loaded(tmp_path):
    bagging(tmp_path, width=4).fit(X, Y)
    with pytest.raises(ValueError, match=r"differs in: params\) -- params\.estimator\[0\]: work_dir has 'builder:"):
        bagging(tmp_path, width=16).fit(X, Y)


def test_changed_builder_width_is_refused_for_a_one_run_ensemble(tmp_path):
    settings = {"n_estimators": 1, "epochs": 1, "batch_size": 50, "work_dir": str(tmp_path)}
    SnapshotEnsemble(builder(4), **settings).fit(X, Y)
    with pytest.raises(ValueError, match=r"params\.estimator\[0\]"):
        SnapshotEnsemble(builder(16), **settings).fit(X, Y)


def test_changed_model_spec_of_the_same_name_and_size_is_refused(tmp_path):
    def spec(activation):  # same name, same parameter count: 0.2.0 saw no difference
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation=activation)], name="net")

    BaggingClassifier(spec("softmax"), n_estimators=1, fit_params={"epochs": 1}, work_dir=str(tmp_path)).fit(X, Y)
    with pytest.raises(ValueError, match=r"params\.estimator\[0\]: work_dir has 'model:"):
        BaggingClassifier(spec("sigmoid"), n_estimators=1, fit_params={"epochs": 1}, work_dir=str(tmp_path)).fit(X, Y)


def test_refusal_names_the_setting_and_both_values(tmp_path):
    bagging(tmp_path).fit(X, Y)
    with pytest.raises(ValueError) as info:
        bagging(tmp_path, n_estimators=2).fit(X, Y)
    message = str(info.value)
    assert "params.n_estimators: work_dir has 1, this fit 2" in message
    assert "delete" in message and str(tmp_path) in message


def test_a_nested_fit_setting_is_named(tmp_path):
    bagging(tmp_path).fit(X, Y)
    with pytest.raises(ValueError, match=r"params\.fit_params\.epochs: work_dir has 1, this fit 2"):
        bagging(tmp_path, fit_params={"epochs": 2}).fit(X, Y)


def test_changed_verbose_resumes_with_the_same_members(tmp_path):
    first = bagging(tmp_path, n_estimators=2).fit(X, Y)
    again = bagging(tmp_path, n_estimators=2, verbose=1).fit(X, Y)  # loads, trains nothing
    for a, b in zip(weights_of(first.estimators_), weights_of(again.estimators_), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(again.predict_proba(X), first.predict_proba(X), rtol=1e-6)


def test_stacker_refusal_names_the_values(tmp_path):
    branch = kfuse.Branch(builder(4)(), name="m", inputs="x", trainable=False)
    settings = {"head": 3, "cv": 2, "verbose": 0, "work_dir": str(tmp_path), "meta_fit": {"epochs": 1}}
    kfuse.Stacker([branch], seed=0, **settings).fit({"x": X}, Y)
    with pytest.raises(ValueError, match=r"differs in: seed, splits\) -- seed: work_dir has 0, this fit 1"):
        kfuse.Stacker([branch], seed=1, **settings).fit({"x": X}, Y)


# -- damaged member files -------------------------------------------------------------------
def cut(file):
    data = open(file, "rb").read()
    with open(file, "wb") as f:
        f.write(data[: len(data) // 3])  # cut short, as by a crash or a full disk


@pytest.mark.parametrize("name", ["member_0.keras", "member_0.npz", "run.json"])
def test_damaged_member_file_is_named_with_its_remedy(tmp_path, name):
    bagging(tmp_path).fit(X, Y)
    cut(tmp_path / name)
    with pytest.raises(DamagedCheckpointError) as info:
        bagging(tmp_path).fit(X, Y)
    message = str(info.value)
    assert str(tmp_path / name) in message and "is damaged and cannot be read" in message
    assert "Delete it and fit again" in message and "start over" in message


def test_the_remedy_for_a_damaged_member_works(tmp_path):
    first = bagging(tmp_path).fit(X, Y)
    cut(tmp_path / "member_0.keras")
    with pytest.raises(DamagedCheckpointError, match="member_0.keras"):
        bagging(tmp_path).fit(X, Y)
    os.remove(tmp_path / "member_0.keras")  # as the message says: the member is trained again
    again = bagging(tmp_path).fit(X, Y)
    np.testing.assert_allclose(again.predict_proba(X), first.predict_proba(X), rtol=1e-5, atol=1e-6)


def test_damaged_run_state_is_named(tmp_path):
    settings = {"n_estimators": 1, "epochs": 1, "batch_size": 50, "work_dir": str(tmp_path)}
    SnapshotEnsemble(builder(), **settings).fit(X, Y)
    cut(tmp_path / "run_state.npz")
    with pytest.raises(DamagedCheckpointError, match=r"run_state\.npz.*is damaged.*Delete it"):
        SnapshotEnsemble(builder(), **settings).fit(X, Y)


# -- non-finite data ------------------------------------------------------------------------
def with_nan(rows=(3, 7)):
    x = X.copy()
    x[list(rows), 1] = np.nan
    return x


CLASSIFIERS = [
    lambda: BaggingClassifier(builder(), n_estimators=1, fit_params={"epochs": 1}),
    lambda: AdaBoostClassifier(builder(), n_estimators=1, fit_params={"epochs": 1}),
    lambda: GradientBoostingClassifier(builder(activation=None), n_estimators=1, fit_params={"epochs": 1}),
    lambda: SnapshotEnsemble(builder(), n_estimators=1, epochs=1),
    lambda: FastGeometricEnsemble(builder(), n_estimators=1, epochs=1, cycle=2),
    lambda: SWA(builder(), epochs=0, swa_epochs=1),
]


@pytest.mark.parametrize("make", CLASSIFIERS, ids=["bagging", "adaboost", "gb", "snapshot", "fge", "swa"])
def test_nan_features_are_refused_at_fit_naming_the_rows(make):
    estimator = make()
    with pytest.raises(ValueError, match=rf"{type(estimator).__name__}\.fit: input 'x' has NaN or infinite values in rows \[3, 7\]"):
        estimator.fit(with_nan(), Y)
    assert not hasattr(estimator, "model_")


@pytest.mark.parametrize("make", [
    lambda: BaggingRegressor(regressor, n_estimators=1, fit_params={"epochs": 1}),
    lambda: AdaBoostRegressor(regressor, n_estimators=1, fit_params={"epochs": 1}),
    lambda: GradientBoostingRegressor(regressor, n_estimators=1, fit_params={"epochs": 1}),
    lambda: SWA(regressor, epochs=0, swa_epochs=1),
], ids=["bagging", "adaboost_r2", "gb", "swa"])
def test_infinite_targets_are_refused_naming_the_rows(make):
    y = R.copy()
    y[5] = np.inf
    with pytest.raises(ValueError, match=r"the targets y has NaN or infinite values in rows \[5\].*drop those rows"):
        make().fit(X, y)


def test_nan_in_one_input_of_a_dict_names_that_input():
    a, b = keras.Input((4,), name="a"), keras.Input((2,), name="b")
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.Concatenate()([a, b]))
    model = keras.Model({"a": a, "b": b}, out)
    side = np.zeros((100, 2), "float32")
    side[42, 0] = np.nan
    with pytest.raises(ValueError, match=r"input 'b' has NaN or infinite values in rows \[42\]"):
        BaggingClassifier(model, n_estimators=1, fit_params={"epochs": 1}).fit({"a": X, "b": side}, Y)


def test_weighted_ensemble_refuses_nan_held_out_data():
    members = [builder()() for _ in range(2)]
    with pytest.raises(ValueError, match=r"WeightedEnsemble\.fit: input 'x' has NaN.*rows \[3, 7\]"):
        WeightedEnsemble(members, method="optimize").fit(with_nan(), Y)


# -- labels ---------------------------------------------------------------------------------
def test_float_class_labels_make_a_classifier_that_predicts_labels():
    keras.utils.set_random_seed(1)
    members = [builder()() for _ in range(2)]  # untrained: weights and argmax are still well defined
    ens = WeightedEnsemble(members, method="optimize").fit(X, Y.astype("float64"))
    assert ens.task_ == "classification"
    pred = ens.predict(X)
    assert pred.shape == (100,) and pred.dtype == np.float64 and set(np.unique(pred)) <= {0.0, 1.0, 2.0}
    proba = sum(w * m.predict(X, verbose=0) for w, m in zip(ens.weights_, members, strict=True))
    np.testing.assert_array_equal(pred, np.argmax(proba, axis=1).astype("float64"))


def test_members_with_more_outputs_than_classes_are_refused_by_weighted_ensemble():
    members = [builder(classes=4)() for _ in range(2)]
    with pytest.raises(ValueError, match=r"output 4 values per row but y has 3 classes \[0, 1, 2\]"):
        WeightedEnsemble(members, method="optimize").fit(X, Y)


@pytest.mark.parametrize("make", [
    lambda: SnapshotEnsemble(builder(), n_estimators=1, epochs=1, batch_size=50),
    lambda: FastGeometricEnsemble(builder(), n_estimators=1, epochs=1, cycle=2, batch_size=50),
    lambda: SWA(builder(), epochs=0, swa_epochs=1, batch_size=50),
], ids=["snapshot", "fge", "swa"])
def test_string_labels_work_in_one_run_ensembles(make):
    names = np.array(["cat", "dog", "eel"])[Y]
    ens = make().fit(X, names)
    assert ens.task_ == "classification" and list(ens.classes_) == ["cat", "dog", "eel"]
    pred = ens.predict(X)
    np.testing.assert_array_equal(pred, ens.classes_[np.argmax(ens.predict_proba(X), axis=1)])
    assert set(pred) <= {"cat", "dog", "eel"}


def test_whole_number_float_labels_are_classes_for_swa():
    ens = SWA(builder(), epochs=0, swa_epochs=1, batch_size=50).fit(X, Y.astype("float32"))
    assert ens.task_ == "classification" and ens.predict(X).dtype == np.float32


@pytest.mark.parametrize("make", [
    lambda: BaggingClassifier(builder(classes=4), n_estimators=1, fit_params={"epochs": 1}),
    lambda: SnapshotEnsemble(builder(classes=4), n_estimators=1, epochs=1),
], ids=["bagging", "snapshot"])
def test_more_outputs_than_classes_is_refused_at_fit(make):
    with pytest.raises(ValueError, match=r"output 4 values per row but y has 3 classes.*Build the network with 3 outputs"):
        make().fit(X, Y)


def test_continuous_labels_are_refused_by_a_classifier():
    with pytest.raises(ValueError, match=r"y holds continuous values.*use a regressor"):
        BaggingClassifier(builder(), n_estimators=1, fit_params={"epochs": 1}).fit(X, R)


def test_adaboost_takes_whole_number_float_labels():
    def build():
        model = builder(classes=2)()
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
        return model

    labels = (X[:, 0] > 0).astype("float64") + 1.0  # 1.0 and 2.0, as pandas hands them
    ens = AdaBoostClassifier(build, n_estimators=1, fit_params={"epochs": 5}, random_state=0).fit(X, labels)
    assert list(ens.classes_) == [1.0, 2.0] and ens.predict(X).dtype == np.float64
    assert ens.score(X, labels) > 0.8


# -- settings -------------------------------------------------------------------------------
@pytest.mark.parametrize("make, name", [
    (lambda: SnapshotEnsemble(builder(), n_estimators=1, epochs=1, learning_rate=0.0), "learning_rate"),
    (lambda: FastGeometricEnsemble(builder(), n_estimators=1, epochs=1, cycle=2, learning_rate=0), "learning_rate"),
    (lambda: FastGeometricEnsemble(builder(), n_estimators=1, epochs=1, cycle=2, lr_1=-0.05), "lr_1"),
    (lambda: FastGeometricEnsemble(builder(), n_estimators=1, epochs=1, cycle=2, lr_2=0.0), "lr_2"),
    (lambda: SWA(builder(), epochs=1, swa_epochs=1, learning_rate=-1e-3), "learning_rate"),
    (lambda: SWA(builder(), epochs=1, swa_epochs=1, swa_learning_rate=0.0), "swa_learning_rate"),
], ids=["snapshot", "fge", "fge_lr_1", "fge_lr_2", "swa", "swa_phase"])
def test_learning_rates_of_zero_or_below_are_refused(make, name):
    estimator = make()
    with pytest.raises(ValueError, match=rf"`{name}` must be a finite number > 0; received"):
        estimator.fit(X, Y)


def test_nan_learning_rate_is_refused():
    with pytest.raises(ValueError, match=r"`learning_rate` must be a finite number > 0; received nan"):
        AdaBoostClassifier(builder(), n_estimators=1, learning_rate=float("nan")).fit(X, Y)


def test_mistyped_method_is_refused_even_without_data():
    with pytest.raises(ValueError, match=r"WeightedEnsemble: Unknown weighting method 'unifrom'.*Did you mean 'uniform'"):
        WeightedEnsemble([builder()(), builder()()], method="unifrom").fit()


# -- not fitted -----------------------------------------------------------------------------
@pytest.mark.parametrize("make", [*CLASSIFIERS, lambda: AdaBoostRegressor(regressor),
                                  lambda: WeightedEnsemble([regressor()])],
                         ids=["bagging", "adaboost", "gb", "snapshot", "fge", "swa", "adaboost_r2", "weighted"])
def test_not_fitted_estimators_raise_sklearns_error(make):
    estimator = make()
    with pytest.raises(NotFittedError, match="not fitted yet: call .fit"):
        estimator.predict(X)
    assert issubclass(NotFittedError, ValueError)  # code that caught ValueError still works


def test_run_json_keeps_the_settings_readable(tmp_path):
    bagging(tmp_path, verbose=1).fit(X, Y)
    saved = json.loads((tmp_path / "run.json").read_text())
    assert saved["params"]["n_estimators"] == 1 and "verbose" not in saved["params"]
    assert saved["params"]["estimator"][0].startswith("builder:")
