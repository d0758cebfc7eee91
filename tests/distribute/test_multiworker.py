"""2 real worker processes on localhost train one stack under MultiWorkerMirroredStrategy.

Each worker reads different local data and builds its base UNSEEDED (its own random
weights); kfuse's MWMS fix (keras-team/keras#20585) lets Keras `fit` run, and `stack`
broadcasts the copied base weights from the chief. Both workers must end with identical
weights and a lower loss.
"""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import requires_tensorflow

WORKER = os.path.join(os.path.dirname(os.path.dirname(__file__)), "workers", "multiworker_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 180


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@requires_tensorflow()
@pytest.mark.slow
def test_two_workers_train_to_identical_weights(tmp_path):
    cluster = {"worker": [f"localhost:{p}" for p in free_ports(2)]}
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        log = open(tmp_path / f"worker{index}.log", "w")
        processes.append(
            (subprocess.Popen([sys.executable, WORKER, str(index), str(tmp_path)], env=env, cwd=ROOT,
                              stdout=log, stderr=subprocess.STDOUT), log)
        )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        # one deadline for both; a worker that fails stops the other (it would wait forever)
        while any(p.poll() is None for p, _ in processes):
            if time.monotonic() > deadline:
                pytest.fail(f"multi-worker training did not finish in {TIMEOUT_S} s")
            if any(p.poll() not in (None, 0) for p, _ in processes):
                break
            time.sleep(0.2)
    finally:
        for process, log in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    logs = {i: (tmp_path / f"worker{i}.log").read_text()[-3000:] for i in range(2)}
    for index, (process, _) in enumerate(processes):
        assert process.returncode == 0, f"worker {index} failed:\n{logs[index]}"

    results = [np.load(tmp_path / f"worker{i}.npz") for i in range(2)]
    assert int(results[0]["replicas"]) == 2
    # the workers' own bases differ: identical weights below come from the broadcast
    assert not np.allclose(results[0]["base_weights"], results[1]["base_weights"])
    weights = [[r[k] for k in sorted(r.files, key=_order) if k.startswith("arr_")] for r in results]
    assert len(weights[0]) == len(weights[1]) > 0
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)
    for r in results:
        assert float(r["after"]) < float(r["before"]) - 0.1
        history = r["history"]
        assert history[-1] < history[0]
    # the logged loss is the cross-worker mean: the same on both workers
    np.testing.assert_allclose(results[0]["history"], results[1]["history"], rtol=1e-6)
    # different local data: the workers' own losses differ
    assert abs(float(results[0]["before"]) - float(results[1]["before"])) > 1e-3


def _order(key):
    return int(key.split("_")[1]) if key.startswith("arr_") else -1
