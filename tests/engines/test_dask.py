"""Independent fits on a local Dask cluster (2 worker processes, one thread each): the
sequential results bit for bit, a killed worker's job rescheduled, failures named with the
others cancelled, GPUs declared as a worker resource, an unreachable cluster named."""

import time

import joblib
import numpy as np
import pytest

from kfuse.engines import Engine, backends, use
from kfuse.stacking import remote
from tests import engines as helpers

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def on_dask(client):
    return joblib.parallel_config(backend="dask", n_jobs=2, client=client)


def test_stacker_bagging_and_voting_on_dask_are_the_sequential_ones(client):
    expected = helpers.sequential()
    with on_dask(client):
        got = helpers.probabilities(helpers.fits())
    for name in ("stacker", "bagging", "voting"):
        assert np.array_equal(got[name], expected[name]), name
    assert not np.array_equal(got["bagging"], got["voting"])


def test_a_worker_killed_mid_fold_is_rescheduled_with_the_same_result(client, tmp_path):
    got, expected, killed, pids = helpers.fit_with_a_worker_killed(tmp_path, lambda: on_dask(client))
    assert killed in pids and len(pids) >= 2  # the killed job ran again in another process
    assert np.array_equal(got, expected)
    client.wait_for_workers(2, timeout=120)  # the nanny restarted the killed worker



def test_a_failing_job_names_branch_fold_and_worker_and_the_rest_are_cancelled(client):
    x, y = helpers.data()
    with on_dask(client), pytest.raises(ValueError, match=helpers.FAILED):
        helpers.failing_stacker().fit({"x": x}, y)
    deadline = time.time() + 30
    while any(client.processing().values()) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(client.processing().values())  # nothing of that run left on the workers


def test_a_job_asks_dask_for_a_gpu_resource(client):
    dask_backend = backends.Dask(Engine("dask", 2, client=client), {"x": np.zeros(3)})
    assert dask_backend.cluster_gpus is False  # these workers declare no GPU resource
    assert dask_backend.resources(remote.FoldJob("fold", "run")) is None
    assert dask_backend.resources(remote.FoldJob("fold", "run", gpus=1)) == {"GPU": 1}
    dask_backend.close()


def test_an_unreachable_scheduler_is_named():
    with pytest.raises(ConnectionError, match=r"the Dask scheduler at 'tcp://127.0.0.1:9' cannot be reached"):
        use("dask", address="tcp://127.0.0.1:9", timeout=1)


def test_a_closed_client_is_refused_before_any_job(client):
    closed = distributed.Client(client.scheduler.address, set_as_default=False)
    closed.close()
    x, y = helpers.data()
    with joblib.parallel_config(backend="dask", client=closed), \
            pytest.raises(ConnectionError, match=r"is not connected \(status 'closed'\)"):
        helpers.stacker().fit({"x": x}, y)
