"""`SharedFit`: fold models trained in one worker's variables train exactly as alone."""

import keras
import numpy as np

from kfuse.trainers.epoch_loop import fit_in_memory
from kfuse.trainers.shared_fit import SharedFit
from tests.stacking import blobs


def build(seed):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu")(inp)
    h = keras.layers.BatchNormalization(momentum=0.9)(h)
    h = keras.layers.Dropout(0.3)(h)  # its seed state must follow the fold model
    out = keras.layers.Dense(3)(h)
    model = keras.Model(inp, out)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    return model


def test_each_fold_model_trains_as_it_would_alone():
    x, y = blobs(120, seed=0)
    rows = [np.arange(0, 90), np.arange(30, 120), np.arange(0, 119)]  # different row counts
    shared = SharedFit(lambda: build(99))
    alone, together = [], []
    for k, r in enumerate(rows):
        reference = build(k)
        want = fit_in_memory(reference, x[r], y[r], epochs=3, batch_size=16, seed=k).history["loss"]
        model = build(k)
        got = shared.fit(model, x[r], y[r], seed=k, epochs=3, batch_size=16).history["loss"]
        np.testing.assert_allclose(got, want, rtol=1e-5)
        assert shared.holds(model)
        alone.append(reference)
        together.append(model)
    for reference, model in zip(alone, together, strict=True):
        for w_ref, w in zip(reference.get_weights(), model.get_weights(), strict=True):
            np.testing.assert_allclose(w, w_ref, rtol=1e-4, atol=1e-6)  # BatchNorm stats too
        np.testing.assert_allclose(model.predict(x, verbose=0), reference.predict(x, verbose=0), atol=1e-5)
    # the three fold models differ (each kept its own weights), and one trace served them
    assert not np.allclose(together[0].get_weights()[0], together[1].get_weights()[0])
    assert shared.epoch_function.traces == 1


def test_a_different_architecture_trains_on_its_own():
    x, y = blobs(60, seed=1)
    shared = SharedFit(lambda: build(5))
    shared.fit(build(0), x, y, seed=0, epochs=1, batch_size=16)
    keras.utils.set_random_seed(1)
    other = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    other.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = other.get_weights()[0].copy()
    shared.fit(other, x, y, seed=0, epochs=2, batch_size=16)
    assert not shared.holds(other) and not np.allclose(other.get_weights()[0], before)


def test_stacker_oof_predictions_are_each_fold_models_own():
    """The fold models share one training function and one feature model: each fold's
    out-of-fold rows must still be predicted by that fold's own weights."""
    from sklearn.model_selection import StratifiedKFold

    import kfuse
    from tests.stacking import small_model

    x, y = blobs(90, seed=2)
    branch = kfuse.Branch(small_model("mlp"), name="mlp", inputs="signal", fit={"epochs": 2, "batch_size": 16})
    stacker = kfuse.Stacker([branch], head=3, cv=3, refit=False, verbose=0, meta_fit={"epochs": 2}).fit(x, y)
    splits = StratifiedKFold(3, shuffle=True, random_state=stacker.seed_).split(np.zeros(len(y)), y)
    models = stacker.fold_models_["mlp"]
    for k, (_, held_out) in enumerate(splits):
        own = models[k].predict(x[held_out], verbose=0)
        np.testing.assert_allclose(stacker.oof_predictions_["mlp"][held_out], own, atol=1e-6)
    assert not np.allclose(models[0].get_weights()[0], models[1].get_weights()[0])


def test_fit_pool_keeps_one_worker_per_architecture():
    from kfuse.trainers.shared_fit import FitPool

    x, y = blobs(60, seed=3)

    def wide(seed, units):
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(units, activation="relu"), keras.layers.Dense(3)])
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    pool = FitPool()
    for k, units in enumerate((4, 6, 4, 6)):
        reference, model = wide(k, units), wide(k, units)
        want = fit_in_memory(reference, x, y, epochs=2, batch_size=16, seed=k).history["loss"]
        got = pool.fit(model, x, y, seed=k, epochs=2, batch_size=16).history["loss"]
        np.testing.assert_allclose(got, want, rtol=1e-5)
        for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert len(pool.shared) == 2 and all(s.epoch_function.traces == 1 for s in pool.shared)


def test_fit_pool_tells_architectures_with_the_same_variables_apart():
    """A ReLU and a tanh network (or two Dropout rates, or a frozen layer) have the same
    variables: each must still train in a worker of its own architecture, as it would alone
    (the pool once trained the tanh network in the ReLU worker)."""
    from kfuse.trainers.shared_fit import FitPool
    from kfuse.trainers.worker import architecture

    x, y = blobs(60, seed=4)

    def net(seed, activation="relu", rate=0.0, frozen=False):
        keras.utils.set_random_seed(seed)
        hidden = keras.layers.Dense(6, activation=activation, trainable=not frozen)
        model = keras.Sequential([keras.Input((8,)), hidden, keras.layers.Dropout(rate), keras.layers.Dense(3)])
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    kinds = [{}, {"activation": "tanh"}, {"rate": 0.5}, {"frozen": True}, {}]
    assert len({architecture(net(0, **kind)) for kind in kinds}) == 4  # two builds of one kind agree
    pool = FitPool()
    for k, kind in enumerate(kinds):
        reference, model = net(k, **kind), net(k, **kind)
        fit_in_memory(reference, x, y, epochs=2, batch_size=16, seed=k)
        pool.fit(model, x, y, seed=k, epochs=2, batch_size=16)
        for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    assert len(pool.shared) == 4
