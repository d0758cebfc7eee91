"""A distributed search: a chief and 2 workers as real processes on localhost.

The chief serves KerasTuner's oracle over gRPC on a free port; each worker asks it for
trials and trains them. Every trial must run exactly once, and the chief must report the
best. A hard timeout kills every process, so the test can never hang CI.
"""

import json
import os
import socket
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from tests.conftest import requires_tensorflow

WORKER = os.path.join(os.path.dirname(__file__), "..", "workers", "tuner_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 300
MAX_TRIALS = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@requires_tensorflow()
@pytest.mark.slow
def test_chief_and_two_workers_run_every_trial_once(bases, data, tmp_path):
    for name, model in zip(("a", "b"), bases, strict=True):
        model.save(str(tmp_path / f"{name}.keras"))
    (x, y), (xv, yv) = data["train"], data["val"]
    np.savez(tmp_path / "data.npz", x=x[:256], y=y[:256], x_val=xv, y_val=yv)
    port = str(free_port())
    processes = []
    try:
        for tuner_id in ("chief", "worker0", "worker1"):
            env = dict(os.environ, KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP="127.0.0.1",
                       KERASTUNER_ORACLE_PORT=port, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
                       PYTHONPATH=ROOT)
            log = open(tmp_path / f"{tuner_id}.out", "w")
            command = [sys.executable, WORKER, str(tmp_path), str(MAX_TRIALS)]
            processes.append((tuner_id, subprocess.Popen(command, env=env, cwd=ROOT, stdout=log,
                                                         stderr=subprocess.STDOUT), log))
        for _, process, _ in processes:
            process.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the distributed search did not finish in {TIMEOUT_S} s")
    finally:
        for _, process, log in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    outputs = {tid: (tmp_path / f"{tid}.out").read_text()[-3000:] for tid, _, _ in processes}
    for tuner_id, process, _ in processes:
        assert process.returncode == 0, f"{tuner_id} failed:\n{outputs[tuner_id]}"
    ran = []
    for tuner_id in ("worker0", "worker1"):
        path = tmp_path / f"ran_{tuner_id}.log"
        ran += path.read_text().split() if path.exists() else []
    assert not (tmp_path / "ran_chief.log").exists()  # the chief only serves the oracle
    counts = Counter(ran)
    assert all(n == 1 for n in counts.values()), f"trials run more than once: {counts}"
    report = json.loads((tmp_path / "chief.json").read_text())
    assert set(counts) == set(report["trials"]) and len(counts) == MAX_TRIALS
    assert all(t["status"] == "COMPLETED" for t in report["trials"].values())
    best = max(report["trials"], key=lambda tid: report["trials"][tid]["score"])
    assert report["best_trial"] == best
    assert report["best_score"] == report["trials"][best]["score"] > 0.2  # chance: 0.1
    assert f'"best_trial": "{best}"' in outputs["chief"]
