"""The one training engine: a fit's route decided once (`FitJob`), one scheduler, one worker
reset (weights, BatchNorm statistics, seed state, optimizer) for every reused network."""

import keras
import numpy as np
import pytest

from kfuse.ensemble.base import new_member
from kfuse.ensemble.trainer_pool import Trainers
from kfuse.trainers import jobs
from kfuse.trainers.epoch_function import EPOCH_FUNCTION_ATTRIBUTE
from kfuse.trainers.members import fit_member
from kfuse.trainers.schedule import Scheduler, run_all
from tests.helpers import dropout_net

RNG = np.random.default_rng(0)
X = RNG.normal(size=(48, 5)).astype("float32")
Y = (X[:, 0] > 0).astype("int64") + (X[:, 1] > 0.5)
FIT = {"epochs": 2, "batch_size": 16}


def _dropout_net():
    return dropout_net(5)


def test_the_route_is_decided_once_from_the_settings():
    model = _dropout_net()
    assert jobs.route(model, X, Y, FIT) == jobs.LOOP
    assert jobs.route(model, X, Y, FIT, group=2) == jobs.TOGETHER
    assert jobs.route(model, X, Y, FIT, group=2, shareable=False) == jobs.LOOP
    assert jobs.route(model, X, Y, FIT, n_jobs=2) == jobs.THREAD
    assert jobs.route(model, X, Y, dict(FIT, verbose=1), n_jobs=2, group=2) == jobs.LOOP
    assert jobs.route(model, X, Y, dict(FIT, validation_split=0.2), group=2) == jobs.LOOP
    assert jobs.route(model, X, Y, dict(FIT, class_weight={0: 2.0}), group=2) == jobs.KERAS
    with pytest.raises(ValueError, match="route must be one of .* received 'fast'"):
        jobs.FitJob(model, X, Y, FIT, route="fast")


def test_a_reused_trainer_trains_a_member_as_it_trains_alone():
    """The second member trains in the first one's network: its Dropout seed state must be
    its own, not what the first member's training left (set_weights alone kept that)."""
    trainers = Trainers([_dropout_net], "classification", "test")
    fit_member(trainers.fresh(0, 1), X, Y, dict(FIT, seed=0))
    second = trainers.fresh(1, 2)
    fit_member(second, X, Y, dict(FIT, seed=1))
    alone = new_member(_dropout_net, 2, "classification", "test", 1)
    fit_member(alone, X, Y, dict(FIT, seed=1))
    for u, v in zip(second.variables, alone.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=u.path)


def test_the_scheduler_pairs_by_key_and_trains_a_lone_job_alone(side_by_side_calls):
    """Three jobs of key "a" and one of "b", groups of two: one pair; the last "a" trains in
    the pair's traced epoch with the other copy idle (no rows), "b" alone (no group epoch of
    its own yet); each model equals the one trained by itself, bit for bit."""
    finished, made = [], []
    for i, key in enumerate("aab" "a"):
        keras.utils.set_random_seed(i)
        made.append((key, _dropout_net()))
    with Scheduler(lambda job, result: finished.append(job.tag), group=2,
                   make_worker=lambda job: _dropout_net) as scheduler:
        run_all((jobs.FitJob(m, X, Y, FIT, seed=i, route=jobs.route(m, X, Y, FIT, group=2), key=k, tag=i)
                 for i, (k, m) in enumerate(made)), scheduler)
    assert side_by_side_calls == [2] and sorted(finished) == [0, 1, 2, 3]
    assert not hasattr(made[3][1], EPOCH_FUNCTION_ATTRIBUTE)  # the pair's epoch trained it: no trace of its own
    assert hasattr(made[2][1], EPOCH_FUNCTION_ATTRIBUTE)  # "b" trained itself
    for i, (_, model) in enumerate(made):
        keras.utils.set_random_seed(i)
        alone = _dropout_net()
        jobs.fit_job(jobs.FitJob(alone, X, Y, FIT, seed=i))
        for u, v in zip(model.variables, alone.variables, strict=True):
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=f"job {i} {u.path}")
