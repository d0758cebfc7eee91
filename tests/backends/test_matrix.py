"""Every public capability on the current Keras backend: it runs, or it says why not.

`make test` runs this module on TensorFlow (with the suite), JAX and PyTorch (on PyTorch
without TensorFlow: see conftest.py). Each test builds the user's own tiny models,
runs one capability on them and asserts what it computed AND that the user's models
still predict exactly as before (on JAX, a `fit` donates the buffers of the arrays it
trains: a branch sharing them with the base would delete the user's weights).
TensorFlow-only capabilities (SavedModel export on PyTorch, tf.distribute strategies off
TensorFlow) must raise `BackendError` naming the backend.
"""

import os

import keras
import numpy as np
import pytest

import kfuse
from kfuse.utils.backend_support import BackendError, backend_name

BACKEND = keras.backend.backend()


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int64")


_TRAINED = {}  # seed -> weights: each test gets fresh user models, trained once per session


def user_model(seed):
    """The user's own compiled, trained classifier (a new model object every call)."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((4,), name="x"), keras.layers.Dense(6, activation="relu"),
         keras.layers.Dense(2, activation="softmax")],
        name=f"user_{seed}",
    )
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    if seed not in _TRAINED:
        x, y = data()
        model.fit(x, y, epochs=3, batch_size=16, verbose=0)
        _TRAINED[seed] = [np.array(w, copy=True) for w in model.get_weights()]
    model.set_weights(_TRAINED[seed])
    return model


class Untouched:
    """The user's models and their predictions now; `check()` asserts both unchanged."""

    def __init__(self, *models):
        self.x = data(seed=1)[0]
        self.models = models
        self.before = [m.predict(self.x, verbose=0) for m in models]
        self.weights = [[np.array(w) for w in m.get_weights()] for m in models]

    def check(self):
        for model, before, weights in zip(self.models, self.before, self.weights, strict=True):
            np.testing.assert_array_equal(model.predict(self.x, verbose=0), before)
            for now, then in zip(model.get_weights(), weights, strict=True):
                np.testing.assert_array_equal(now, then)


@pytest.fixture
def users():
    a, b = user_model(1), user_model(2)
    return a, b, Untouched(a, b)


def test_stack_fit_save_load(users, tmp_path):
    a, b, untouched = users
    x, y = data()
    model = kfuse.stack([kfuse.Branch(a, name="a", trainable=True), kfuse.Branch(b, name="b", trainable=False)],
                        fusion="concat", head=2, optimizer=keras.optimizers.Adam(0.01))
    before = model.get_layer("a").get_weights()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert any(not np.array_equal(p, q) for p, q in zip(before, model.get_layer("a").get_weights(), strict=True))
    np.testing.assert_array_equal(model.get_layer("b").predict(x, verbose=0), b.predict(x, verbose=0))
    path = str(tmp_path / "stack.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    untouched.check()


def test_fit_head(users):
    a, b, untouched = users
    x, y = data()
    model = kfuse.stack([kfuse.Branch(a, name="a", trainable=False), kfuse.Branch(b, name="b", trainable=False)],
                        fusion="concat", head=2)
    head = [np.array(w) for w in model.top.get_weights()]
    history = model.fit_head(x, y, epochs=2, batch_size=16, verbose=0)
    assert len(history.history["loss"]) == 2
    assert any(not np.array_equal(p, q) for p, q in zip(head, model.top.get_weights(), strict=True))
    np.testing.assert_array_equal(model.get_layer("a").predict(x, verbose=0), a.predict(x, verbose=0))
    untouched.check()


def test_stacker(users):
    a, b, untouched = users
    x, y = data()
    stacker = kfuse.Stacker(
        [kfuse.Branch(a, name="a", trainable=False), kfuse.Branch(b, name="b", fit={"epochs": 1})],
        head=2, cv=2, verbose=0, meta_fit={"epochs": 2},
    )
    stacker.fit(x, y)
    proba = stacker.predict_proba(x)
    assert proba.shape == (len(x), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(stacker.predict(x), proba.argmax(axis=1))
    untouched.check()


def _linear_builder():
    return keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2)])


ENSEMBLES = {
    "BaggingClassifier": lambda E, a: E.BaggingClassifier(a, n_estimators=2, fit_params={"epochs": 2}, random_state=0),
    "AdaBoostClassifier": lambda E, a: E.AdaBoostClassifier(a, n_estimators=2, fit_params={"epochs": 3}, random_state=0),
    "GradientBoostingClassifier": lambda E, a: E.GradientBoostingClassifier(
        _linear_builder, n_estimators=2, fit_params={"epochs": 2}, random_state=0),
    "SnapshotEnsemble": lambda E, a: E.SnapshotEnsemble(a, n_estimators=2, epochs=2, random_state=0),
    "FastGeometricEnsemble": lambda E, a: E.FastGeometricEnsemble(a, n_estimators=2, epochs=3, cycle=2, random_state=0),
    "SWA": lambda E, a: E.SWA(a, epochs=1, swa_epochs=1, random_state=0),
}


@pytest.mark.parametrize("name", sorted(ENSEMBLES))
def test_ensemble(users, name):
    from kfuse import ensemble

    a, b, untouched = users
    x, y = data()
    estimator = ENSEMBLES[name](ensemble, a).fit(x, y)
    proba = estimator.predict_proba(x)
    assert proba.shape == (len(x), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert isinstance(estimator.model_, kfuse.FusedModel)
    np.testing.assert_array_equal(estimator.predict(x), estimator.classes_[proba.argmax(axis=1)])
    assert estimator.model_.predict(x, verbose=0).shape == (len(x), 2)
    untouched.check()


def test_weighted_ensemble(users):
    from kfuse.ensemble import WeightedEnsemble

    a, b, untouched = users
    x, y = data()
    chosen = WeightedEnsemble([a, b], method="caruana").fit(x, y)
    weights = np.asarray(chosen.weights_)
    np.testing.assert_allclose(weights.sum(), 1.0, atol=1e-6)
    expected = weights[0] * a.predict(x, verbose=0) + weights[1] * b.predict(x, verbose=0)
    np.testing.assert_allclose(chosen.predict_proba(x), expected, atol=1e-5)
    untouched.check()


def test_merge(users):
    a, b, untouched = users
    merged = kfuse.merge.merge([a, b], "linear", model_parameters=[{"weight": 0.25}, {"weight": 0.75}])
    for m, wa, wb in zip(merged.get_weights(), a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(m, 0.25 * wa + 0.75 * wb, atol=1e-6)
    x, _ = data()
    assert merged.predict(x, verbose=0).shape == (len(x), 2)
    untouched.check()


def test_compare(users):
    a, b, untouched = users
    x, y = data()
    fused = kfuse.stack([kfuse.Branch(a, name="a"), kfuse.Branch(b, name="b")], fusion="average")
    report = kfuse.compare({"a": a, "b": b, "fused": fused}, x, y, n_boot=20)
    mean = (a.predict(x, verbose=0) + b.predict(x, verbose=0)) / 2
    for name, proba in (("a", a.predict(x, verbose=0)), ("fused", mean)):
        assert report.table.loc[name, "accuracy"] == pytest.approx(np.mean(proba.argmax(1) == y))
    untouched.check()


def test_fusion_hypermodel(users, tmp_path):
    a, b, untouched = users
    x, y = data()
    hypermodel = kfuse.tuning.FusionHyperModel(
        [kfuse.Branch(a, name="a", trainable=True), kfuse.Branch(b, name="b", trainable=False)],
        head=2, fusions=["concat"], finetune={"a": 1, "b": 0})  # the first trial runs the defaults: fine-tune a here
    tuner = kfuse.tuning.make_tuner(hypermodel, "random", objective="val_loss", max_trials=1,
                                    directory=str(tmp_path), overwrite=True)
    tuner.search(x, y, validation_data=(x, y), epochs=1, batch_size=16, verbose=0)
    best = tuner.get_best_models(1)[0]
    assert best.predict(x, verbose=0).shape == (len(x), 2)
    untouched.check()


@pytest.mark.skipif(BACKEND == "torch", reason="PyTorch: see test_export_refused_on_torch")
def test_export_saved_model(users, tmp_path):
    a, _, untouched = users
    x, _ = data()
    model = kfuse.stack([kfuse.Branch(a, name="a")], fusion="average")
    path = kfuse.export.export_saved_model(model, str(tmp_path / "m"))
    assert os.path.basename(path) == "1"
    assert kfuse.export.verify(model, path, {"x": x}) < 1e-5
    untouched.check()


@pytest.mark.skipif(BACKEND != "torch", reason="the PyTorch refusal")
def test_export_refused_on_torch(users, tmp_path):
    a, _, _ = users
    model = kfuse.stack([kfuse.Branch(a, name="a")], fusion="average")
    with pytest.raises(BackendError, match=r"PyTorch \(KERAS_BACKEND='torch'\).*model\.save"):
        kfuse.export.export_saved_model(model, str(tmp_path / "m"))
    assert not (tmp_path / "m").exists()  # nothing half-written


@pytest.mark.skipif(BACKEND == "tensorflow", reason="tf.distribute runs on TensorFlow (tests/distribute/test_distribute.py)")
@pytest.mark.parametrize("strategy", ["mirrored", "default"])
def test_strategy_refused_off_tensorflow(users, strategy):
    a, _, _ = users
    with pytest.raises(BackendError, match=rf"strategy='{strategy}'.*on {backend_name()} \(KERAS_BACKEND="):
        kfuse.stack([kfuse.Branch(a, name="a")], fusion="average", strategy=strategy)
