"""AdaBoost.R2 (`AdaBoostRegressor`) and its weighted-median layer, against scikit-learn's rules."""

import os

import keras
import numpy as np
import pytest

import kfuse
from kfuse.ensemble import AdaBoostClassifier, AdaBoostRegressor, WeightedMedian, r2_step

RNG = np.random.default_rng(0)
X = RNG.uniform(-2, 2, size=(300, 3)).astype("float32")
Y = (np.sin(2 * X[:, 0]) + X[:, 1] ** 2 + 0.1 * RNG.normal(size=300)).astype("float32")


def mlp():
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    net.compile(keras.optimizers.Adam(0.01), "mse", jit_compile=False)
    return net


def numpy_weighted_median(predictions, weights):
    """scikit-learn's `_get_median_predict`, written out: predictions (n, M)."""
    order = np.argsort(predictions, axis=1)
    cdf = np.cumsum(np.asarray(weights, "float64")[order], axis=1)
    at_or_above = cdf >= 0.5 * cdf[:, -1][:, None]
    index = at_or_above.argmax(axis=1)
    chosen = order[np.arange(len(predictions)), index]
    return predictions[np.arange(len(predictions)), chosen]


@pytest.mark.parametrize("case", ["random", "ties", "integer_weights", "zero_weights"])
def test_weighted_median_layer_equals_numpy(case):
    rng = np.random.default_rng(hash(case) % 2**32)
    n, m, d = 200, 7, 3
    values = rng.normal(size=(n, d, m)).astype("float32")
    weights = rng.uniform(0.1, 2.0, size=m)
    if case == "ties":  # values from a small set: many equal predictions in a row
        values = rng.integers(0, 3, size=(n, d, m)).astype("float32")
    if case == "integer_weights":  # cumulative sums hit exactly half the total
        weights = np.array([1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0])
        values = rng.integers(0, 4, size=(n, d, m)).astype("float32")
    if case == "zero_weights":
        weights[[1, 4]] = 0.0
    out = np.asarray(WeightedMedian(list(weights))([values[..., j] for j in range(m)]))
    assert out.shape == (n, d)
    for col in range(d):
        np.testing.assert_array_equal(out[:, col], numpy_weighted_median(values[:, col, :], weights))


def test_weighted_median_refuses_bad_weights():
    with pytest.raises(ValueError, match=r"non-negative; received \[1.0, -1.0\]"):
        WeightedMedian([1.0, -1.0])
    with pytest.raises(ValueError, match="2 weights for 3 branches"):
        WeightedMedian([1.0, 1.0])([np.zeros((2, 1))] * 3)


def numpy_r2_round(w, prediction, y, loss, learning_rate):
    """scikit-learn's AdaBoostRegressor._boost formulas, written out independently."""
    err = np.abs(prediction - y)
    err = err / err.max()
    err = {"linear": err, "square": err**2, "exponential": 1 - np.exp(-err)}[loss]
    e = np.sum(w * err)
    beta = e / (1 - e)
    new = w * beta ** ((1 - err) * learning_rate)
    return e, learning_rate * np.log(1 / beta), new / new.sum()


@pytest.mark.parametrize("loss", ["linear", "square", "exponential"])
@pytest.mark.parametrize("learning_rate", [1.0, 0.5])
def test_r2_step_equals_the_formulas(loss, learning_rate):
    y = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    prediction = np.array([0.5, 1.0, 1.0, 3.5, 4.0, 2.0])
    w = np.array([0.1, 0.2, 0.1, 0.3, 0.2, 0.1])
    error, weight, new = r2_step(w, prediction, y, loss, learning_rate)
    e, a, expected = numpy_r2_round(w, prediction, y, loss, learning_rate)
    assert error == pytest.approx(e, rel=1e-12)
    assert weight == pytest.approx(a, rel=1e-12)
    np.testing.assert_allclose(new, expected, rtol=1e-12)
    # a perfect member: weight 1, weights unchanged; error >= 0.5: weight 0 (boosting stops)
    assert r2_step(w, y, y, loss)[:2] == (0.0, 1.0)
    error, weight, same = r2_step(w, y + 3.0, y, loss)  # one offset: every normalised loss is 1
    assert error >= 0.5 and weight == 0.0
    np.testing.assert_array_equal(same, w)


def test_r2_rounds_equal_scikit_learn_adaboost_regressor():
    """scikit-learn's own AdaBoostRegressor over members whose predictions are fixed: the
    same errors and estimator weights as r2_step applied round after round."""
    sklearn = pytest.importorskip("sklearn")
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.ensemble import AdaBoostRegressor as SkAdaBoost

    rng = np.random.default_rng(1)
    y = rng.normal(size=50)
    rounds = [y + rng.normal(scale=s, size=50) for s in (0.3, 0.5, 0.4, 0.6)]

    class Fixed(RegressorMixin, BaseEstimator):
        made = []

        def fit(self, x, y):
            self.index_ = len(Fixed.made)
            Fixed.made.append(self)
            return self

        def predict(self, x):
            return rounds[self.index_]

    for loss in ("linear", "square", "exponential"):
        Fixed.made = []
        sk = SkAdaBoost(Fixed(), n_estimators=4, loss=loss, learning_rate=0.7, random_state=0).fit(np.zeros((50, 1)), y)
        w = np.full(50, 1 / 50)
        errors, weights = [], []
        for i, prediction in enumerate(rounds):
            error, weight, w = r2_step(w, prediction, y, loss, 0.7, last=i == 3)
            if error >= 0.5:
                break
            errors.append(error)
            weights.append(weight)
        kept = len(sk.estimators_)
        assert kept == len(weights), sklearn.__version__
        np.testing.assert_allclose(sk.estimator_errors_[:kept], errors, rtol=1e-10)
        np.testing.assert_allclose(sk.estimator_weights_[:kept], weights, rtol=1e-10)


@pytest.fixture(scope="module")
def boosted(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("r2_work"))
    fitted = AdaBoostRegressor(mlp, n_estimators=5, fit_params={"epochs": 20, "batch_size": 32},
                               random_state=0, work_dir=work).fit(X[:200], Y[:200])
    return fitted, work


def test_real_fit_beats_the_first_member_and_is_one_graph(boosted):
    fitted, _ = boosted
    mse = lambda p: float(np.mean((np.asarray(p).ravel() - Y[200:]) ** 2))  # noqa: E731
    ensemble = mse(fitted.predict(X[200:]))
    first = mse(fitted.estimators_[0].predict(X[200:], verbose=0))
    # observed: ensemble 0.387, first member 0.463 (held-out MSE; y variance 1.32)
    assert ensemble <= first
    model = fitted.model_
    assert isinstance(model, kfuse.FusedModel)
    assert model.branch_names == [f"member_{i}" for i in range(len(fitted.estimators_))]
    assert isinstance(model.fusion_layer, WeightedMedian)
    assert len(fitted.estimator_weights_) == len(fitted.estimator_errors_) == len(fitted.estimators_)
    members = np.stack([m.predict(X[200:], verbose=0)[:, 0] for m in fitted.estimators_], axis=1)
    np.testing.assert_allclose(fitted.predict(X[200:])[:, 0], numpy_weighted_median(members, fitted.estimator_weights_),
                               atol=1e-6)


def test_save_reload_and_export_give_equal_predictions(boosted, tmp_path):
    fitted, _ = boosted
    path = tmp_path / "r2.keras"
    fitted.model_.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(X[200:], verbose=0), fitted.predict(X[200:]), atol=1e-6)
    from kfuse import export

    served = export.export_saved_model(fitted.model_, str(tmp_path / "served"))
    assert export.verify(fitted.model_, served, X[:8]) < 1e-5


def test_work_dir_resumes_and_refuses_another_configuration(boosted):
    fitted, work = boosted
    os.remove(os.path.join(work, f"member_{len(fitted.estimators_) - 1}.npz"))  # as if it crashed there
    again = AdaBoostRegressor(mlp, n_estimators=5, fit_params={"epochs": 20, "batch_size": 32},
                              random_state=0, work_dir=work).fit(X[:200], Y[:200])
    np.testing.assert_allclose(again.estimator_weights_, fitted.estimator_weights_, rtol=1e-6)
    np.testing.assert_allclose(again.predict(X[200:]), fitted.predict(X[200:]), atol=1e-5)
    with pytest.raises(ValueError, match="different configuration"):
        AdaBoostRegressor(mlp, n_estimators=5, loss="square", fit_params={"epochs": 20, "batch_size": 32},
                          random_state=0, work_dir=work).fit(X[:200], Y[:200])


def test_first_member_at_half_error_is_kept_alone_with_weight_zero():
    def constant():  # predicts 0 everywhere; y near 10: normalised loss near 1
        net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, kernel_initializer="zeros")])
        net.compile(keras.optimizers.SGD(0.0), "mse", jit_compile=False)
        return net

    y = 10 + 0.1 * X[:40, 0]
    with pytest.warns(UserWarning, match="member_0 has weighted loss .* >= 0.5"):
        fitted = AdaBoostRegressor(constant, n_estimators=3, fit_params={"epochs": 1}).fit(X[:40], y)
    assert len(fitted.estimators_) == 1 and fitted.estimator_weights_.tolist() == [0.0]
    np.testing.assert_allclose(fitted.predict(X[:4]), 0.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_estimators": 0}, r"n_estimators.*>= 1; received 0"),
    ({"learning_rate": 0.0}, r"learning_rate.*> 0; received 0.0"),
    ({"learning_rate": -1}, r"learning_rate.*> 0; received -1"),
    ({"loss": "squared"}, r"unknown `loss` 'squared'.*did you mean 'square'"),
    ({"loss": "exp"}, r"unknown `loss` 'exp'.*did you mean 'exponential'"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdaBoostRegressor(mlp, **kwargs).fit(X[:40], Y[:40])


def test_classification_head_and_multi_column_targets_are_refused():
    def classifier():
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, activation="softmax")])

    with pytest.raises(ValueError, match=r"member_0 ends in 3 unit\(s\) with activation 'softmax'.*Dense\(1\)"):
        AdaBoostRegressor(classifier, fit_params={"epochs": 1}).fit(X[:40], Y[:40])
    with pytest.raises(ValueError, match=r"one target column.*received shape \(40, 2\)"):
        AdaBoostRegressor(mlp).fit(X[:40], np.stack([Y[:40], Y[:40]], 1))


def test_classifier_points_regression_targets_to_the_regressor():
    with pytest.raises(ValueError, match="use AdaBoostRegressor"):
        AdaBoostClassifier(mlp).fit(X[:40], Y[:40])
