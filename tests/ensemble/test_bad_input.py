"""Every bad input of issue 14: a clear error naming the value and what to do."""

import keras
import numpy as np
import pytest

from kfuse.ensemble import (
    SWA,
    AdaBoostClassifier,
    BaggingClassifier,
    GradientBoostingClassifier,
    SnapshotEnsemble,
    WeightedEnsemble,
    ensemble_weights,
)

X = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
Y = (X[:, 0] > 0).astype("int64")


def net():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])


@pytest.mark.parametrize("cls", [BaggingClassifier, AdaBoostClassifier, GradientBoostingClassifier, SnapshotEnsemble])
@pytest.mark.parametrize("value", [0, -2])
def test_n_estimators_below_one(cls, value):
    with pytest.raises(ValueError, match=f"n_estimators.*>= 1; received {value}"):
        cls(net, n_estimators=value).fit(X, Y)


@pytest.mark.parametrize("value, message", [(0.0, r"outside \(0, 1\]"), (1.5, r"outside \(0, 1\]"),
                                            (41, "at most 40")])
def test_max_samples_out_of_range(value, message):
    with pytest.raises(ValueError, match=message):
        BaggingClassifier(net, max_samples=value).fit(X, Y)


def test_oob_without_bootstrap():
    with pytest.raises(ValueError, match="bootstrap=True"):
        BaggingClassifier(net, oob_score=True, bootstrap=False).fit(X, Y)


def test_adaboost_on_regression_targets():
    with pytest.raises(ValueError, match="integer class labels.*use AdaBoostRegressor"):
        AdaBoostClassifier(net).fit(X, X[:, 0])


def test_adaboost_member_at_chance_on_the_first_step():
    y = np.where(np.arange(40) < 12, 0, 1)  # 70% class 1

    def constant():  # zero weights: uniform output, argmax says class 0 everywhere
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax", kernel_initializer="zeros")])
        model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy", jit_compile=False)
        return model

    with pytest.raises(ValueError, match=r"member_0 has weighted error 0.700, at or above chance"):
        AdaBoostClassifier(constant, fit_params={"epochs": 1}).fit(X, y)


@pytest.mark.parametrize("cls", [AdaBoostClassifier, GradientBoostingClassifier])
@pytest.mark.parametrize("rate", [0, -0.1])
def test_boosting_learning_rate_not_positive(cls, rate):
    with pytest.raises(ValueError, match=f"learning_rate.*> 0; received {rate}"):
        cls(net, learning_rate=rate).fit(X, Y)


def test_snapshot_cycles_must_divide_epochs():
    with pytest.raises(ValueError, match=r"3 cycles do not divide epochs=10; give n_estimators in \[1, 2, 5, 10\]"):
        SnapshotEnsemble(net, n_estimators=3, epochs=10).fit(X, Y)


def test_swa_without_trainable_weights():
    def frozen():
        model = net()
        model.trainable = False
        return model

    with pytest.raises(ValueError, match="no trainable weights"):
        SWA(frozen, epochs=0, swa_epochs=1).fit(X, Y)


def test_weights_over_members_with_different_class_counts():
    a, b = np.full((4, 2), 0.5), np.full((4, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"different output shapes or class counts \(member_0: \(4, 2\), member_1: \(4, 3\)\)"):
        ensemble_weights([a, b], np.zeros(4, int), method="uniform")


@pytest.mark.parametrize("method", ["optimize", "caruana"])
def test_held_out_methods_need_held_out_data(method):
    with pytest.raises(ValueError, match="HELD-OUT data"):
        WeightedEnsemble([net(), net()], method=method).fit()


def test_unknown_weighting_method():
    with pytest.raises(ValueError, match="Did you mean 'caruana'"):
        ensemble_weights([np.full((2, 2), 0.5)], np.zeros(2, int), method="caruna")


def test_work_dir_from_another_configuration(tmp_path, capsys):
    BaggingClassifier(net, n_estimators=1, fit_params={"epochs": 1}, work_dir=str(tmp_path), verbose=1).fit(X, Y)
    assert "1/1" in capsys.readouterr().out  # the progress bar over members
    with pytest.raises(ValueError, match=r"different configuration \(differs in: params\) -- params.max_samples: work_dir has 1.0, this fit 0.5"):
        BaggingClassifier(net, n_estimators=1, max_samples=0.5, fit_params={"epochs": 1}, work_dir=str(tmp_path)).fit(X, Y)


@pytest.mark.parametrize("optimizer, error, message", [
    ({"name": "adam"}, ValueError, "not a Keras optimizer config"),
    (3, TypeError, "optimizer must be a name.*got int 3"),
    ("adamm", ValueError, "unknown optimizer 'adamm'"),
])
def test_one_run_optimizer_not_an_optimizer(optimizer, error, message):
    with pytest.raises(error, match=message):
        SnapshotEnsemble(net, n_estimators=2, epochs=2, optimizer=optimizer).fit(X, Y)
