"""`Stacker(n_jobs=...)`: models trained side by side in threads are the ones trained one at
a time, and the thread runner keeps its contract (seeding in the caller, errors raised)."""

import threading

import keras
import numpy as np
import pytest

import kfuse
from kfuse.trainers import threads
from tests.stacking import blobs


def dropout_net(t):
    h = keras.layers.Dense(16, activation="relu")(t)
    h = keras.layers.BatchNormalization()(h)
    return keras.layers.Dropout(0.3)(h)  # its random stream must follow its fold model


def branches():
    keras.utils.set_random_seed(3)
    built = keras.Sequential([keras.Input((8,), name="x"), keras.layers.Dense(12, activation="tanh"),
                              keras.layers.Dense(3, activation="softmax")])
    settings = {"epochs": 3, "batch_size": 16, "learning_rate": 1e-2}
    return [
        kfuse.Branch(dropout_net, name="drop", inputs={"x": (8,)}, fit=settings),
        kfuse.Branch(built, name="built", fit=settings),
        kfuse.Branch(lambda t: keras.layers.Dense(8)(t), name="wide", inputs={"x": (8,)}, fit=settings),
        # a callback: this base trains through one thread only, after the others
        kfuse.Branch(lambda t: keras.layers.Dense(4, activation="relu")(t), name="called",
                     inputs={"x": (8,)}, fit={**settings, "callbacks": [keras.callbacks.TerminateOnNaN()]}),
    ]


@pytest.mark.parametrize("refit", [True, False])
def test_n_jobs_trains_the_models_one_at_a_time_trains(refit):
    x, y = blobs(150, seed=4)
    fitted = {}
    for n_jobs in (None, 3):
        stacker = kfuse.Stacker(branches(), head=3, cv=3, refit=refit, seed=5, verbose=0,
                                meta_fit={"epochs": 5}, selection="meta", n_jobs=n_jobs)
        fitted[n_jobs] = stacker.fit({"x": x}, y)
    one, many = fitted[None], fitted[3]
    for name in ("drop", "built", "wide", "called"):
        np.testing.assert_allclose(many.oof_predictions_[name], one.oof_predictions_[name], rtol=0, atol=1e-6)
        assert many.cv_scores_[name] == one.cv_scores_[name]
        models = [[s.base_models_[name]] if refit else s.fold_models_[name] for s in (many, one)]
        for a, b in zip(*models, strict=True):
            for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
                np.testing.assert_allclose(wa, wb, rtol=0, atol=1e-6)
    np.testing.assert_allclose(many.predict_proba({"x": x}), one.predict_proba({"x": x}), rtol=0, atol=1e-6)
    # the folds differ from each other: the comparison above is not between copies
    assert not np.allclose(one.oof_predictions_["drop"], one.oof_predictions_["wide"])


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, True, "2"])
def test_n_jobs_must_be_none_minus_one_or_positive(n_jobs):
    with pytest.raises(ValueError, match=r"n_jobs must be None, -1 \(every core\) or a positive int; received"):
        kfuse.Stacker(branches(), head=3, n_jobs=n_jobs)


def test_runner_prepares_in_order_here_and_fits_side_by_side():
    main = threading.current_thread()
    both_running = threading.Barrier(2, timeout=30)  # breaks unless two fits overlap
    prepared, done = [], []

    def prepare(job):
        assert threading.current_thread() is main
        prepared.append(job)
        return ("state", job), job != "later"

    def fit(job, state):
        if job in (1, 2):
            both_running.wait()
        return (state, threading.current_thread() is main)

    threads.run([1, 2, "later", 3], prepare, fit, lambda job, out: done.append((job, out)), n_jobs=2)
    assert prepared == [1, 2, "later", 3]
    results = dict(done)
    assert all(results[job] == (("state", job), False) for job in (1, 2, 3))  # in pool threads
    assert results["later"] == (("state", "later"), True)
    assert done[-1][0] == "later"  # runs in this thread once the pool is done


def test_runner_raises_a_thread_error_here():
    def fit(job, state):
        if job == 2:
            raise RuntimeError("fold 2 failed")
        return job

    with pytest.raises(RuntimeError, match="fold 2 failed"):
        threads.run([1, 2, 3, 4], lambda job: (job, True), fit, lambda job, out: None, n_jobs=2)
