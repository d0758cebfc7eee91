"""Searches with real tuners and real training: cached trials, best model, objectives."""

import os

import keras
import keras_tuner
import numpy as np
import pytest

import kfuse
from kfuse.tuning import FusionHyperModel, make_tuner
from tests.helpers import assert_round_trip
from tests.tuning.conftest import accuracy

FROZEN = {"finetune": 0, "modality_dropout": 0.0, "meta_dropout": 0.0}


def fixed(**values):
    hp = keras_tuner.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


DESIGN = dict(fusion="concat", meta_depth=0, meta_width=16, include_a=True, include_b=True,
              learning_rate=1e-2)


def test_cached_trial_trains_the_same_model_as_the_full_graph(branches, data):
    (x, y), (xv, yv) = data["train"], data["val"]
    cached = FusionHyperModel(branches, head=10, **FROZEN)
    plain = FusionHyperModel(branches, head=10, cache=False, **FROZEN)
    results = []
    for hypermodel in (cached, plain):
        keras.utils.set_random_seed(3)
        model = hypermodel.build(fixed(**DESIGN))
        history = hypermodel.fit(fixed(**DESIGN), model, x, y, validation_data=(xv, yv), epochs=2,
                                 batch_size=64, shuffle=False, verbose=0, callbacks=[])
        results.append((model, history.history))
    (fast, fast_log), (full, full_log) = results
    assert cached.cache.passes == 2  # training rows, validation rows: once each
    assert sorted(fast_log) == sorted(full_log) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    np.testing.assert_allclose(fast_log["val_loss"], full_log["val_loss"], rtol=1e-4)
    np.testing.assert_allclose(fast.predict(xv, verbose=0), full.predict(xv, verbose=0), atol=1e-4)
    assert fast_log["val_accuracy"][-1] > 0.2  # 10 classes: chance is 0.1


def test_a_finetuning_trial_trains_the_whole_graph(branches, data):
    (x, y) = data["train"]
    hypermodel = FusionHyperModel(branches, head=10, fusions="concat", finetune=1)
    hp = fixed(include_a=True, include_b=True, finetune_a=1, finetune_b=0)
    model = hypermodel.build(hp)
    before = model.get_layer("a").get_layer("probabilities").get_weights()[0].copy()
    hypermodel.fit(hp, model, x, y, epochs=1, verbose=0)
    assert hypermodel.cache.passes == 0
    assert not np.allclose(before, model.get_layer("a").get_layer("probabilities").get_weights()[0])


@pytest.mark.slow
def test_random_search_best_model_is_an_ordinary_stack(branches, data, tmp_path):
    (x, y), (xv, yv), (xt, yt) = data["train"], data["val"], data["test"]
    hypermodel = FusionHyperModel(branches, head=10, fusions=["weighted_average", "concat"], **FROZEN)
    tuner = make_tuner(hypermodel, "random", objective="val_accuracy", max_trials=2, seed=0,
                       directory=str(tmp_path), project_name="random")
    tuner.search(x, y, validation_data=(xv, yv), epochs=5, batch_size=32, verbose=0)
    trials = tuner.oracle.trials.values()
    assert len(trials) == 2 and all(t.status == "COMPLETED" for t in trials)
    assert hypermodel.cache.passes == 2  # branch outputs computed once for the whole search
    best_trial = tuner.oracle.get_best_trials(1)[0]
    assert best_trial.score == max(t.score for t in trials)
    best = tuner.get_best_models(1)[0]
    assert isinstance(best, kfuse.FusedModel) and best.branch_names
    bases = [accuracy(b.base, xt, yt) for b in branches]
    assert accuracy(best, xt, yt) > 0.8 * max(bases)
    # the reloaded weights are the best epoch's: its validation accuracy is the trial's score
    assert best.evaluate(xv, yv, verbose=0, return_dict=True)["accuracy"] == pytest.approx(best_trial.score, abs=1e-6)
    assert_round_trip(best, xt[:16], tmp_path)
    from kfuse.export import export_saved_model

    path = export_saved_model(best, str(tmp_path / "saved_models" / "best"))
    assert os.path.exists(os.path.join(path, "saved_model.pb"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bayesian", "hyperband"])
def test_bayesian_and_hyperband_search_the_space(branches, data, tmp_path, kind):
    (x, y), (xv, yv) = data["train"], data["val"]
    x, y = x[:400], y[:400]
    hypermodel = FusionHyperModel(branches, head=10, fusions=["average", "concat"], **FROZEN)
    tuner = make_tuner(hypermodel, kind, objective="val_loss", max_trials=2, max_epochs=2, seed=0,
                       directory=str(tmp_path), project_name=kind, hyperband_iterations=1) if kind == "hyperband" \
        else make_tuner(hypermodel, kind, objective="val_loss", max_trials=2, seed=0, num_initial_points=1,
                        directory=str(tmp_path), project_name=kind)
    tuner.search(x, y, validation_data=(xv, yv), epochs=1, batch_size=128, verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) >= 2 and all(t.status == "COMPLETED" for t in trials)
    first = tuner.oracle.trials[min(tuner.oracle.trials)].hyperparameters.values  # the space's defaults
    assert (first["fusion"], first["meta_depth"], first["modality_dropout"], first["learning_rate"]) == \
        ("average", 0, 0.0, pytest.approx(1e-4)), first
    best = tuner.get_best_models(1)[0]
    assert isinstance(best, kfuse.FusedModel)
    score = best.evaluate(xv, yv, verbose=0, return_dict=True)["loss"]
    assert score == pytest.approx(tuner.oracle.get_best_trials(1)[0].score, rel=1e-4)


def test_an_objective_that_is_not_compiled_stops_the_search(branches, data, tmp_path):
    (x, y) = data["train"]
    hypermodel = FusionHyperModel(branches, head=10, **FROZEN)
    tuner = keras_tuner.RandomSearch(hypermodel, objective=keras_tuner.Objective("val_auc", "max"),
                                     max_trials=2, directory=str(tmp_path))
    with pytest.raises(ValueError, match="'val_auc' is not among the compiled metrics"):
        tuner.search(x[:64], y[:64], validation_split=0.25, epochs=1, verbose=0)


def test_frozen_bases_are_cloned_once_per_search(branches, data):
    (x, y) = data["train"]
    hypermodel = FusionHyperModel(branches, head=10, fusions=["concat", "average"], **FROZEN)
    first = hypermodel.build(fixed(**DESIGN))
    second = hypermodel.build(fixed(**{**DESIGN, "fusion": "average"}))
    # one frozen sub-model per base, shared by every trial's stack; the user's Branch untouched
    assert first.get_layer("a") is second.get_layer("a")
    assert all(b._shared_model is None for b in branches)
    hypermodel.fit(fixed(**DESIGN), second, x, y, epochs=1, verbose=0)
    np.testing.assert_allclose(
        first.branch_outputs(x[:8])["a"], branches[0].base.predict(x[:8], verbose=0), atol=1e-6
    )
    with pytest.raises(ValueError, match="only a frozen branch"):
        kfuse.Branch(branches[0].base, name="c")._share_frozen_model({"signal": (40,)})


def test_a_cached_trial_with_the_tuners_callbacks_runs_the_in_memory_epoch_loop(branches, data, tmp_path):
    """KerasTuner's epoch-level callbacks reach the trial wrapped (`_Redirect`); the wrapper's
    forwarding batch hooks must not send the trial to `Model.fit` (one traced epoch instead)."""
    from keras_tuner.src.engine import tuner_utils

    from kfuse.trainers.epoch_loop import EPOCH_FUNCTION_ATTRIBUTE

    (x, y), (xv, yv) = data["train"], data["val"]
    hypermodel = FusionHyperModel(branches, head=10, **FROZEN)
    callbacks = [tuner_utils.SaveBestEpoch(keras_tuner.Objective("val_accuracy", "max"), str(tmp_path / "ckpt.weights.h5")),
                 keras.callbacks.EarlyStopping(monitor="val_loss", patience=5)]
    model = hypermodel.build(fixed(**DESIGN))
    history = hypermodel.fit(fixed(**DESIGN), model, x, y, validation_data=(xv, yv), epochs=3,
                             batch_size=64, verbose=0, callbacks=callbacks)
    assert len(history.history["val_accuracy"]) == 3
    _, _, function = getattr(model.top, EPOCH_FUNCTION_ATTRIBUTE)
    assert function.traces == 1
    assert getattr(model.top, "train_function", None) is None  # Model.fit never ran
    assert os.path.exists(tmp_path / "ckpt.weights.h5")  # the best epoch's full stack, written once

    # a callback that does work per batch still trains through Model.fit
    per_batch = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: None)
    model = hypermodel.build(fixed(**DESIGN))
    hypermodel.fit(fixed(**DESIGN), model, x, y, validation_data=(xv, yv), epochs=1, batch_size=64,
                   verbose=0, callbacks=[per_batch])
    assert getattr(model.top, EPOCH_FUNCTION_ATTRIBUTE, None) is None
    assert model.top.train_function is not None


def test_a_frozen_variant_keeps_the_branch_pool_and_copy():
    from kfuse.tuning.hypermodel import _variant

    inp = keras.Input((5, 3), name="seq")
    sequence = keras.Model(inp, keras.layers.Dense(4)(inp))
    branch = kfuse.Branch(sequence, name="s", pool="mean", copy=False)
    frozen = _variant(branch, 0)
    assert (frozen.pool, frozen.copy, frozen.trainable) == ("mean", False, False)
    model = kfuse.stack([frozen], head=2)
    assert model.get_layer("s").output.shape == (None, 4)  # pooled, as the branch says
