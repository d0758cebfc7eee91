"""Warm start by default (issue 33 item 1): frozen classifiers ending in softmax, stacked
with the default output="raw", start as the plain average of their branches."""

import tempfile
import warnings

import keras
import numpy as np
import pytest

import kfuse


def digits_split():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    return x[:300], y[:300], x[300:800], y[300:800], x[800:], y[800:]


def mlp(name, width, x, y, seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((64,), name="pixels"), keras.layers.Dense(width, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")], name=name)  # fmt: skip
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def digits_bases():
    xb, yb, xf, yf, xv, yv = digits_split()
    bases = [mlp("a", 8, xb, yb, 2), mlp("b", 12, xb, yb, 3)]
    average = np.mean([m.predict(xv, verbose=0) for m in bases], axis=0)
    return bases, average, (xf, yf, xv, yv)


@pytest.mark.parametrize("meta", [None, (16,), (16, 16)])
def test_raw_softmax_bases_start_as_the_average_on_digits(digits_bases, meta):
    bases, average, (_, _, xv, _) = digits_bases
    branches = [kfuse.Branch(m, name=m.name, trainable=False) for m in bases]  # output="raw"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no kfuse warning (Keras emits a numpy DeprecationWarning)
        model = kfuse.stack(branches, fusion="concat", meta=meta, head=10)
    assert model.kfuse_info["warm_start"] is True
    start = model.predict_proba(xv)
    np.testing.assert_array_equal(start.argmax(-1), average.argmax(-1))  # was 9% on 0.2.0
    assert np.abs(start - average).mean() < 0.03  # probabilities close (softmax of 10 x the average)


def test_a_softmax_layer_and_a_meta_learner_over_logits_start_as_the_average():
    keras.utils.set_random_seed(4)
    x = np.random.default_rng(4).normal(size=(32, 6)).astype("float32")
    inp = keras.Input((6,), name="x")
    layered = keras.Model(inp, keras.layers.Softmax()(keras.layers.Dense(3)(inp)), name="layered")
    activated = keras.Sequential([keras.Input((6,), name="x"), keras.layers.Dense(3, activation="softmax")], name="act")
    model = kfuse.stack([kfuse.Branch(m, name=m.name, trainable=False) for m in (layered, activated)],
                        fusion="average", head=3)  # fmt: skip
    average = (layered.predict(x, verbose=0) + activated.predict(x, verbose=0)) / 2
    np.testing.assert_array_equal(model.predict(x, verbose=0).argmax(-1), average.argmax(-1))
    # logits through a ReLU meta-learner: a +x and a -x unit per class carry them exactly
    logits = [kfuse.Branch(m, name=m.name, trainable=False, output="logits") for m in (layered, activated)]
    deep = kfuse.stack(logits, fusion="concat", meta=(8, 6), head=3)
    values = deep.branch_outputs(x)
    np.testing.assert_allclose(deep.predict(x, verbose=0), (values["layered"] + values["act"]) / 2, atol=1e-5)


def test_stack_warns_once_naming_the_reason_and_the_fix():
    x = keras.Input((6,), name="x")
    linear = [keras.Model(x, keras.layers.Dense(3)(x), name=n) for n in ("p", "q")]
    branches = [kfuse.Branch(m, name=m.name, trainable=False) for m in linear]
    with pytest.warns(UserWarning, match=r"\['p', 'q'\].*output='logits'.*warm_start=False") as caught:
        kfuse.stack(branches, fusion="concat", head=3)
    assert len([w for w in caught if "warm start" in str(w.message)]) == 1
    softmax = [kfuse.Branch(keras.Sequential([keras.Input((6,), name="x"), keras.layers.Dense(3, activation="softmax")],
                                             name=n), name=n, trainable=False) for n in ("s", "t")]  # fmt: skip
    with pytest.warns(UserWarning, match="GatedFusion does not average the branches; use concat"):
        kfuse.stack(softmax, fusion="gated", head=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        kfuse.stack(branches, fusion="concat", head=3, warm_start=False)  # asked cold: silent
        kfuse.stack(branches, fusion="concat", meta=(8,), head=5)  # widths 3 != 5: features, silent


@pytest.mark.slow
def test_the_stacker_top_over_a_meta_learner_starts_as_the_average():
    keras.utils.set_random_seed(5)
    x = np.random.default_rng(5).normal(size=(60, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0)
    bases = [keras.Sequential([keras.Input((6,), name="x"), keras.layers.Dense(3, activation="softmax")], name=n)
             for n in ("u", "v")]  # fmt: skip
    stacker = kfuse.Stacker([kfuse.Branch(m, name=m.name, fit={"epochs": 1}) for m in bases], meta=(16,), head=3,
                            cv=2, selection="meta", verbose=0, meta_fit={"epochs": 1})  # fmt: skip
    stacker.fit(x, y)
    assert stacker.model_.kfuse_info["warm_start"] is True  # 0.2.0: cold under a meta-learner


@pytest.mark.slow
def test_a_short_search_never_ends_below_the_average(digits_bases):
    import keras_tuner

    bases, average, (xf, yf, xv, yv) = digits_bases
    average_accuracy = float(np.mean(average.argmax(-1) == yv))
    branches = [kfuse.Branch(m, name=m.name, trainable=False) for m in bases]
    hypermodel = kfuse.tuning.FusionHyperModel(branches, head=10, include=["a", "b"], finetune=0,
                                               fusions=["concat", "average", "soft_vote", "median"])  # fmt: skip
    tuner = keras_tuner.RandomSearch(hypermodel, objective="val_accuracy", max_trials=3, seed=0,
                                     directory=tempfile.mkdtemp(), overwrite=True)  # fmt: skip
    tuner.search(xf, yf, validation_data=(xv, yv), epochs=3, batch_size=32, verbose=0)
    for trial in tuner.oracle.trials.values():  # every trial, not only the best
        assert trial.score >= average_accuracy - 1e-9, (trial.hyperparameters.values, trial.score, average_accuracy)
    best = tuner.get_best_models(1)[0]
    assert float(np.mean(best.predict(xv, verbose=0).argmax(-1) == yv)) >= average_accuracy - 1e-9


def test_the_default_space_builds_the_warm_started_average(digits_bases):
    import keras_tuner

    bases, average, (_, _, xv, _) = digits_bases
    hypermodel = kfuse.tuning.FusionHyperModel([kfuse.Branch(m, name=m.name, trainable=False) for m in bases], head=10)
    hp = keras_tuner.HyperParameters()  # every dimension at its default: the tuner's first trial
    model = hypermodel.build(hp)  # the old defaults: fusion "attention" (the first name), cold
    assert hp.values["fusion"] == "average" and model.kfuse_info["warm_start"] is True, hp.values
    np.testing.assert_array_equal(model.predict(xv, verbose=0).argmax(-1), average.argmax(-1))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])  # seeds whose old first trials all ended below the average
def test_a_short_search_over_the_full_default_space_never_ends_below_the_average(digits_bases, seed):
    """The default space (one-branch subsets, every fusion, meta-learners, fine-tuning)
    drew cold first trials on the old code: its first trial now runs the defaults, the
    warm-startable design, so the search's best is at least the average."""
    bases, average, (xf, yf, xv, yv) = digits_bases
    average_accuracy = float(np.mean(average.argmax(-1) == yv))
    branches = [kfuse.Branch(m, name=m.name, trainable=False) for m in bases]
    hypermodel = kfuse.tuning.FusionHyperModel(branches, head=10)  # the full default space
    tuner = kfuse.tuning.make_tuner(hypermodel, "random", max_trials=3, seed=seed, directory=tempfile.mkdtemp())
    tuner.search(xf, yf, validation_data=(xv, yv), epochs=2, batch_size=64, verbose=0)
    first = tuner.oracle.trials[min(tuner.oracle.trials)].hyperparameters.values
    assert first["fusion"] == "average" and first["include_a"] and first["include_b"], first
    assert first["finetune_a"] == first["finetune_b"] == first["meta_depth"] == 0, first
    assert hypermodel.cache.passes >= 2  # the first (all-frozen) trial ran on cached branch outputs
    best = tuner.get_best_models(1)[0]
    accuracy = float(np.mean(best.predict(xv, verbose=0).argmax(-1) == yv))
    assert accuracy >= average_accuracy - 1e-9, (tuner.oracle.get_best_trials(1)[0].hyperparameters.values, accuracy)
    assert tuner.oracle.get_best_trials(1)[0].score >= average_accuracy - 1e-9
