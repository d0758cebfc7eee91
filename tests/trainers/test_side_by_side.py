"""Fold models trained side by side in one traced epoch (`kfuse.trainers.side_by_side`) are the
models training one at a time gives, bit for bit, and the Stacker's default path uses it."""

import keras
import numpy as np
import pytest

import kfuse
from kfuse.trainers import side_by_side
from kfuse.trainers.shared_fit import SharedFit


def _build():
    inp = keras.Input((6,), name="x")
    h = keras.layers.Dense(12, activation="relu")(inp)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Dropout(0.3)(h)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h))
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", jit_compile=False)
    return model


def _models(seeds):
    out = []
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        out.append(_build())
    return out


def test_two_copies_of_unequal_rows_train_as_each_alone():
    """Dropout, BatchNorm, row weights, and copies of 70 and 53 rows (partial last batches,
    one copy idle for the other's last step): weights and losses equal to the bit."""
    rng = np.random.default_rng(0)
    data = []
    for n in (70, 53):
        x = rng.normal(size=(n, 6)).astype("float32")
        data.append((x, (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5), rng.uniform(0.5, 2, n)))
    fit = {"epochs": 3, "batch_size": 16}
    alone, shared = _models([1, 2]), SharedFit(_build)
    losses = [shared.fit(m, x, y, seed=10 + i, sample_weight=w, **fit).history["loss"]
              for i, (m, (x, y, w)) in enumerate(zip(alone, data, strict=True))]
    together = _models([1, 2])
    histories = side_by_side.SideBySide(_build).fit(
        together, [(x, y) for x, y, _ in data], seeds=[10, 11],
        settings=[{**fit, "sample_weight": w} for _, _, w in data])
    for a, b in zip(alone, together, strict=True):
        for u, v in zip(a.variables, b.variables, strict=True):
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    assert [h.history["loss"] for h in histories] == losses
    assert len(losses[0]) == 3 and losses[0][-1] < losses[0][0]


def test_settings_that_differ_or_need_model_fit_train_alone():
    together = side_by_side.SideBySide(_build)
    models = _models([1, 2])
    assert not together.fits(models, [{"epochs": 2}, {"epochs": 3}])
    assert not together.fits(models[:1], [{"epochs": 2}])
    x, y = np.zeros((8, 6), "float32"), np.zeros(8, "int64")
    assert side_by_side.groupable(models[0], x, y, {"epochs": 2})
    for extra in ({"callbacks": [keras.callbacks.History()]}, {"verbose": 1}, {"validation_split": 0.2},
                  {"class_weight": {0: 1.0}}):
        assert not side_by_side.groupable(models[0], x, y, {"epochs": 2, **extra}), extra
    with pytest.raises(ValueError, match="differ in architecture or fit settings"):
        together.fit(models, [(x, y), (x, y)], [0, 1], [{"epochs": 2}, {"epochs": 3}])


def _stacker():
    def fresh(t):
        t = keras.layers.Dense(8, activation="relu")(t)
        return keras.layers.Dropout(0.2)(keras.layers.BatchNormalization()(t))

    keras.utils.set_random_seed(3)
    branches = [
        kfuse.Branch(fresh, name="fresh", inputs={"x": (6,)}, fit={"epochs": 3, "batch_size": 16}),
        kfuse.Branch(_build(), name="model", inputs="x", fit={"epochs": 2, "batch_size": 32}),
    ]
    return kfuse.Stacker(branches, head=3, cv=3, seed=4, verbose=0, meta_fit={"epochs": 5})


def test_the_stacker_trains_folds_and_refits_side_by_side_as_one_at_a_time(monkeypatch, side_by_side_calls):
    """101 rows, 3 folds (67 / 67 / 68 training rows) and the refit (101): the out-of-fold
    features and the fitted graph's outputs equal those of one model at a time."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(101, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64") + (x[:, 2] > 0.5)
    calls = side_by_side_calls
    monkeypatch.setattr(side_by_side, "group_size", lambda: 2)
    paired = _stacker().fit({"x": x}, y)
    assert calls == [2, 2, 2, 2]  # per base: two folds, then the last fold beside the refit
    monkeypatch.setattr(side_by_side, "group_size", lambda: 1)
    alone = _stacker().fit({"x": x}, y)
    assert len(calls) == 4
    for name in ("fresh", "model"):
        np.testing.assert_array_equal(paired.oof_predictions_[name], alone.oof_predictions_[name])
    np.testing.assert_array_equal(paired.predict_proba({"x": x}), alone.predict_proba({"x": x}))
