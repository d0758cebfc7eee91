"""Independent fits on a local Ray cluster (2 CPUs): the sequential results bit for bit, a
killed worker's job retried, failures named with the others cancelled, GPUs declared."""

import os
import time

import joblib
import numpy as np
import pytest

from kfuse.engines import backends
from kfuse.stacking import remote
from tests import engines as helpers

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    from ray.util.joblib import register_ray

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "3"}})
    register_ray()
    yield
    ray.shutdown()


def on_ray():
    return joblib.parallel_config(backend="ray", n_jobs=2)


def test_stacker_bagging_and_voting_on_ray_are_the_sequential_ones(cluster):
    expected = helpers.sequential()
    with on_ray():
        got = helpers.probabilities(helpers.fits())
    for name in ("stacker", "bagging", "voting"):
        assert np.array_equal(got[name], expected[name]), name
    assert not np.array_equal(got["bagging"], got["voting"])  # not one fit compared with itself


def test_a_worker_killed_mid_fold_is_retried_with_the_same_result(cluster, tmp_path):
    got, expected, killed, pids = helpers.fit_with_a_worker_killed(tmp_path, on_ray)
    assert killed in pids and len(pids) >= 2  # the killed job ran again in another process
    assert np.array_equal(got, expected)



def test_a_failing_job_names_branch_fold_and_worker_and_the_rest_are_cancelled(cluster):
    x, y = helpers.data()
    with on_ray(), pytest.raises(ValueError, match=helpers.FAILED):
        helpers.failing_stacker().fit({"x": x}, y)
    # cancelled: both CPUs free again (no job of that run left running)
    for _ in range(200):
        if ray.available_resources().get("CPU", 0) == 2:
            break
        time.sleep(0.1)
    assert ray.available_resources().get("CPU", 0) == 2


def test_a_job_asks_ray_for_a_gpu_where_the_cluster_has_them(cluster):
    engine = job_engine()
    ray_backend = backends.Ray(engine, {"x": np.zeros(3)})
    cpu_job = remote.FoldJob("fold", "run")
    gpu_job = remote.FoldJob("fold", "run", gpus=1)
    assert ray_backend.cluster_gpus == 0
    assert ray_backend.options(cpu_job) == {"num_cpus": 1, "max_retries": 3, "retry_exceptions": False}
    assert ray_backend.options(gpu_job)["num_gpus"] == 1 and ray_backend.options(gpu_job)["max_calls"] == 1
    ray_backend.cluster_gpus = 2  # a cluster with GPUs: every job asks for one
    assert ray_backend.options(cpu_job)["num_gpus"] == 1


def job_engine():
    from kfuse.engines import Engine

    return Engine("ray", 2)
