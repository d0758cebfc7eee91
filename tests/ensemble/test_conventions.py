"""One convention for every ensemble (issue 35): training settings as constructor arguments,
one meaning per name, 0.2's spellings kept one release with a DeprecationWarning naming the
new one (same results), the builder's compiled optimizer used unless the method must replace
it (then a warning says so), VotingClassifier / VotingRegressor, misspellings refused naming
the closest valid name."""

import warnings

import keras
import numpy as np
import pytest
from sklearn.base import clone

import kfuse
from kfuse.ensemble import (
    SWA,
    AdaBoostClassifier,
    BaggingClassifier,
    FastGeometricEnsemble,
    GradientBoostingClassifier,
    OptimizerReplacedWarning,
    SnapshotEnsemble,
    VotingClassifier,
    VotingRegressor,
)

RNG = np.random.default_rng(7)
X = RNG.normal(size=(160, 4)).astype("float32")
Y = (X[:, 0] > 0).astype("int64") + (X[:, 1] > 0.5).astype("int64")  # classes 0, 1, 2
R = (X[:, 0] - 0.5 * X[:, 2]).astype("float32")
TRAIN, TEST = slice(0, 120), slice(120, None)


def net(classes=3, activation="softmax"):
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(classes, activation=activation)])


def compiled(optimizer=None):
    def build():
        model = net()
        model.compile(optimizer or keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
        return model

    return build


def regressor():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.05), "mse")
    return model


def weights(models):
    return [w for m in models for w in m.get_weights()]


def same_weights(a, b):
    for u, v in zip(weights(a), weights(b), strict=True):
        np.testing.assert_array_equal(u, v)


def fit_recording(estimator, x=X, y=Y):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator.fit(x, y)
    return [w for w in caught if issubclass(w.category, (DeprecationWarning, OptimizerReplacedWarning))
            and w.filename == __file__]  # attributed to the user's line, where Python shows it


# -- deprecated spellings: a warning naming the new one, the same result ----------------------------
@pytest.mark.parametrize("cls", [BaggingClassifier, AdaBoostClassifier])
def test_fit_params_epochs_warns_naming_the_argument_and_trains_the_same(cls):
    old = cls(compiled(), n_estimators=2, fit_params={"epochs": 2, "batch_size": 40}, random_state=0)
    caught = fit_recording(old)
    messages = [str(w.message) for w in caught if w.category is DeprecationWarning]
    assert any("fit_params['epochs'] is deprecated" in m and f"{cls.__name__}(..., epochs=...)" in m for m in messages)
    assert any("fit_params['batch_size'] is deprecated" in m for m in messages)
    new = cls(compiled(), n_estimators=2, epochs=2, batch_size=40, random_state=0).fit(X, Y)
    same_weights(old.estimators_, new.estimators_)
    np.testing.assert_array_equal(old.predict_proba(X), new.predict_proba(X))


def test_fge_epochs_and_learning_rate_are_the_warm_up_under_their_new_names():
    common = {"n_estimators": 2, "cycle": 2, "batch_size": 40, "random_state": 0}
    old = FastGeometricEnsemble(net, epochs=2, learning_rate=2e-3, **common)
    messages = [str(w.message) for w in fit_recording(old)]
    assert any("`epochs` is deprecated (it meant warmup_epochs)" in m and "use `warmup_epochs=2`" in m for m in messages)
    assert any("`learning_rate` is deprecated" in m and "`warmup_learning_rate=0.002`" in m for m in messages)
    new = FastGeometricEnsemble(net, warmup_epochs=2, warmup_learning_rate=2e-3, **common).fit(X, Y)
    same_weights(old.estimators_, new.estimators_)


def test_swa_and_snapshot_old_spellings_train_the_same():
    old = SWA(net, epochs=1, learning_rate=2e-3, swa_epochs=1, batch_size=40, random_state=0)
    assert any("use `warmup_epochs=1`" in str(w.message) for w in fit_recording(old))
    new = SWA(net, warmup_epochs=1, warmup_learning_rate=2e-3, swa_epochs=1, batch_size=40, random_state=0).fit(X, Y)
    same_weights([old.network_], [new.network_])
    snap_old = SnapshotEnsemble(net, n_estimators=2, epochs=2, learning_rate=0.05, fit_params={"batch_size": 40})
    assert {str(w.message).split(";")[0] for w in fit_recording(snap_old)} >= {
        "SnapshotEnsemble: `learning_rate` is deprecated (it meant max_learning_rate) and will be removed in the next release",
        "SnapshotEnsemble: fit_params['batch_size'] is deprecated and will be removed in the next release"}
    snap_new = SnapshotEnsemble(net, n_estimators=2, epochs=2, max_learning_rate=0.05, batch_size=40).fit(X, Y)
    np.testing.assert_array_equal(snap_old.learning_rates_, snap_new.learning_rates_)
    assert snap_new.learning_rates_[0] == pytest.approx(0.05) and len(snap_new.learning_rates_) == 2 * 4  # 160 rows / 40


def test_deprecated_optimizer_argument_equals_compiling_the_builder_with_it():
    settings = {"n_estimators": 2, "epochs": 2, "batch_size": 40, "max_learning_rate": 0.05, "random_state": 0}
    old = SnapshotEnsemble(net, optimizer=keras.optimizers.SGD(momentum=0.9), **settings)
    caught = fit_recording(old)
    assert any("`optimizer` is deprecated" in str(w.message) and "model.compile(optimizer=...)" in str(w.message)
               for w in caught)
    assert not [w for w in caught if w.category is OptimizerReplacedWarning]
    new = SnapshotEnsemble(compiled(keras.optimizers.SGD(momentum=0.9)), **settings).fit(X, Y)
    same_weights(old.estimators_, new.estimators_)


# -- the compiled optimizer ------------------------------------------------------------------------
def test_one_run_methods_keep_the_compiled_optimizer_and_say_once_what_they_replace():
    sgd = keras.optimizers.SGD(learning_rate=0.02, momentum=0.9)
    snap = SnapshotEnsemble(compiled(sgd), n_estimators=2, epochs=2, batch_size=40)
    replaced = [w for w in fit_recording(snap) if w.category is OptimizerReplacedWarning]
    assert len(replaced) == 1 and "SGD(learning_rate=0.02)" in str(replaced[0].message)
    assert snap.learning_rates_[0] == pytest.approx(0.02)  # the cosine peaks at the compiled rate
    swa = SWA(compiled(sgd), warmup_epochs=1, swa_epochs=2, swa_learning_rate=5e-3, batch_size=40)
    replaced = [w for w in fit_recording(swa) if w.category is OptimizerReplacedWarning]
    assert len(replaced) == 1 and "swa_learning_rate=0.005" in str(replaced[0].message)  # two compiles, one warning
    optimizer = swa.network_.optimizer
    assert type(optimizer) is keras.optimizers.SGD and optimizer.momentum == 0.9
    assert float(optimizer.learning_rate.numpy()) == pytest.approx(5e-3)
    assert int(sgd.iterations.numpy()) == 0  # the user's instance is never trained


def test_uncompiled_builder_gets_no_replacement_warning_and_member_ensembles_keep_the_compiled_optimizer():
    fge = FastGeometricEnsemble(net, n_estimators=1, warmup_epochs=1, cycle=2, batch_size=40)
    assert not [w for w in fit_recording(fge) if w.category is OptimizerReplacedWarning]
    bag = BaggingClassifier(compiled(keras.optimizers.RMSprop(0.01)), n_estimators=1, epochs=1, random_state=0)
    assert not fit_recording(bag)
    assert type(bag.estimators_[0].optimizer) is keras.optimizers.RMSprop


# -- VotingClassifier / VotingRegressor --------------------------------------------------------------
def test_soft_voting_is_the_average_of_the_members_and_beats_the_floor():
    vote = VotingClassifier(compiled(), n_estimators=3, epochs=15, batch_size=32, random_state=0)
    vote.fit(X[TRAIN], Y[TRAIN])
    assert isinstance(vote.model_, kfuse.FusedModel)
    assert vote.model_.branch_names == ["member_0", "member_1", "member_2"]
    mean = np.mean([m.predict(X[TEST], verbose=0) for m in vote.estimators_], axis=0)
    np.testing.assert_allclose(vote.predict_proba(X[TEST]), mean, atol=1e-5)
    assert vote.score(X[TEST], Y[TEST]) >= 0.85  # measured 0.975 (seed 0; 0.95 on seeds 1 and 2)
    copy = clone(vote)
    assert copy.get_params() == vote.get_params() and not hasattr(copy, "model_")


def test_hard_voting_is_the_weighted_majority_of_the_members():
    vote = VotingClassifier(compiled(), n_estimators=3, voting="hard", weights=[1.0, 1.0, 3.0], epochs=2,
                            random_state=1).fit(X, Y)
    classes = np.stack([np.argmax(m.predict(X, verbose=0), axis=-1) for m in vote.estimators_])
    np.testing.assert_array_equal(vote.predict(X), classes[2])  # weight 3 outvotes 1 + 1
    shares = vote.predict_proba(X)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-6)


def test_voting_regressor_is_the_weighted_mean_and_beats_the_floor():
    vote = VotingRegressor(regressor, n_estimators=2, weights=[1.0, 3.0], epochs=20, random_state=0)
    vote.fit(X[TRAIN], R[TRAIN])
    outs = [m.predict(X[TEST], verbose=0) for m in vote.estimators_]
    np.testing.assert_allclose(vote.predict(X[TEST]), 0.25 * outs[0] + 0.75 * outs[1], atol=1e-5)
    assert vote.score(X[TEST], R[TEST]) >= 0.9  # R^2, measured 0.998 (seed 0; 0.995-0.998 on seeds 1, 2)


def test_get_params_and_set_params_follow_the_constructor():
    vote = VotingClassifier(net)
    assert vote.set_params(epochs=5, voting="hard") is vote and vote.get_params()["epochs"] == 5
    assert "max_samples" not in vote.get_params()  # its own arguments, not bagging's


# -- misspellings and conflicts: the parameter and the closest valid name -------------------------------
@pytest.mark.parametrize("call, message", [
    (lambda: BaggingClassifier(net, n_estimator=3), r"BaggingClassifier\(\) got an unexpected argument 'n_estimator'; did you mean 'n_estimators'\?"),
    (lambda: VotingClassifier(net).set_params(batchsize=8), r"VotingClassifier.set_params got an unexpected argument 'batchsize'; did you mean 'batch_size'\?"),
    (lambda: GradientBoostingClassifier(net).fit(X, Y, epochs=3), r"fit takes x and y only; `epochs` is a constructor argument: GradientBoostingClassifier\(\.\.\., epochs=\.\.\.\)"),
    (lambda: BaggingClassifier(net, optimizer="sgd"), r"unexpected argument 'optimizer'; the members train with the optimizer the builder compiled"),
    (lambda: SWA(net, swa_epoch=2), r"'swa_epoch'; did you mean 'swa_epochs'\?"),
], ids=["constructor", "set_params", "fit", "optimizer", "swa"])
def test_misspelt_arguments_name_the_closest(call, message):
    with pytest.raises(TypeError, match=message):
        call()


@pytest.mark.parametrize("make, message", [
    (lambda: BaggingClassifier(net, n_estimators=1, fit_params={"epoch": 2}), r"fit_params key 'epoch' is not a keras Model.fit argument; did you mean 'epochs'\?"),
    (lambda: VotingClassifier(net, n_estimators=1, fit_params={"callback": []}), r"'callback'.*did you mean 'callbacks'\?"),
    (lambda: VotingClassifier(net, n_estimators=1, voting="sfot"), r"`voting`='sfot' is not one of \['soft', 'hard'\]; did you mean 'soft'\?"),
    (lambda: VotingClassifier(net, n_estimators=2, weights=[1.0]), r"`weights` has 1 entries but n_estimators=2"),
    (lambda: BaggingClassifier(net, n_estimators=1, epochs=3, fit_params={"epochs": 2}), r"`epochs`=3 and fit_params\['epochs'\]=\[2\] disagree; give `epochs` alone"),
    (lambda: FastGeometricEnsemble(net, n_estimators=1, cycle=2, warmup_epochs=3, epochs=2), r"`warmup_epochs`=3 and its deprecated spelling `epochs`=2 disagree"),
    (lambda: FastGeometricEnsemble(net, n_estimators=1, cycle=2, fit_params={"epochs": 2}), r"`fit_params` may not set `epochs`; set the run's length with FastGeometricEnsemble's own arguments \(warmup_epochs, cycle\)"),
    (lambda: BaggingClassifier(net, n_estimators=1, epochs=0), r"`epochs` must be an integer >= 1; received 0"),
], ids=["fit_params_key", "fit_params_key_2", "voting", "weights", "epochs_twice", "renamed_twice", "one_run_epochs", "epochs_zero"])
def test_bad_settings_are_refused_naming_the_parameter(make, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ValueError, match=message):
            make().fit(X, Y)
