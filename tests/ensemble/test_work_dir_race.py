"""Two writers, one work_dir: real processes (issue 34, races).

0.2.0 let two fits write one work_dir at once (one died with a raw FileNotFoundError:
both wrote the same temporary names, and `run.json`'s check-then-write was not atomic).
Now the claim is an exclusive lock: the second writer is refused with
`WorkDirInUseError` naming the holder, a killed writer's lock is taken over, and the
temporary files it left are removed.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import pytest

import kfuse.utils.run_store
from kfuse.ensemble import BaggingClassifier
from kfuse.utils.run_store import LOCK, TEMP, RunStore, WorkDirInUseError, temp_name

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: a writer: fits a bagging ensemble into argv[1]; its members' training waits (after
#: touching argv[2]) until the file argv[3] exists, so the test controls the overlap
WRITER = """
import os, sys, time
import keras, numpy as np
from kfuse.ensemble import BaggingClassifier
from kfuse.utils.run_store import WorkDirInUseError

work, started, go = sys.argv[1:4]

def build():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])

def wait(logs=None):
    open(started, "a").close()
    for _ in range(1200):
        if os.path.exists(go):
            return
        time.sleep(0.05)

rng = np.random.default_rng(0)
x = rng.normal(size=(100, 4)).astype("float32"); y = rng.integers(0, 3, 100)
settings = {"epochs": 1, "callbacks": [keras.callbacks.LambdaCallback(on_train_begin=wait)]}
try:
    BaggingClassifier(build, n_estimators=2, fit_params=settings, random_state=0, work_dir=work).fit(x, y)
except WorkDirInUseError as error:
    print("REFUSED:", error, flush=True)
    sys.exit(3)
print("DONE", flush=True)
"""


def writer(tmp_path, name):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    started = tmp_path / f"{name}.started"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path / "work"), str(started), str(tmp_path / "go")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    return process, started


def wait_for(path, process, limit=180):
    end = time.monotonic() + limit
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the writer ended early: {process.communicate()}")
        if time.monotonic() > end:
            process.kill()
            pytest.fail("the writer never started training")
        time.sleep(0.1)


def temporaries(folder):
    return [name for _, _, files in os.walk(folder) for name in files if TEMP in name or name.endswith(".tmp")]


@pytest.mark.slow
def test_second_process_is_refused_clearly_and_the_first_finishes(tmp_path):
    first, started = writer(tmp_path, "first")
    try:
        wait_for(started, first)  # the first holds the work_dir and is training
        second, second_started = writer(tmp_path, "second")
        out, err = second.communicate(timeout=120)
        assert second.returncode == 3, (out, err)
        assert "is in use by another fit" in out and f'"pid": {first.pid}' in out
        assert "FileNotFoundError" not in err and not second_started.exists()
    finally:
        (tmp_path / "go").touch()
        out, err = first.communicate(timeout=180)
    assert first.returncode == 0 and "DONE" in out, err
    work = tmp_path / "work"
    assert {"member_0.keras", "member_0.npz", "member_1.keras", "member_1.npz", "run.json"} <= set(os.listdir(work))
    assert temporaries(work) == []


def build():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])


def same_fit(work):
    """The writer's configuration, in this process (the fingerprint is the network built,
    not the builder's name, so this `build` matches the writer's)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 4)).astype("float32")
    y = rng.integers(0, 3, 100)
    settings = {"epochs": 1, "callbacks": [keras.callbacks.LambdaCallback()]}
    return BaggingClassifier(build, n_estimators=2, fit_params=settings, random_state=0, work_dir=str(work)).fit(x, y)


@pytest.mark.slow
def test_a_killed_writers_lock_and_temporaries_are_taken_over(tmp_path):
    first, started = writer(tmp_path, "first")
    try:
        wait_for(started, first)
        with pytest.raises(WorkDirInUseError, match=rf'in use by another fit .*"pid": {first.pid}'):
            same_fit(tmp_path / "work")
        leftover = tmp_path / "work" / f"member_0{TEMP}{first.pid}-0123456789ab.keras"
        leftover.write_bytes(b"half a model")  # as a writer killed mid-save leaves it
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL
    fitted = same_fit(tmp_path / "work")  # the dead writer's lock is taken over
    assert fitted.predict(np.zeros((2, 4), "float32")).shape == (2,)
    assert temporaries(tmp_path / "work") == []
    assert f'"pid": {os.getpid()}' in (tmp_path / "work" / LOCK).read_text()


def test_a_second_claim_in_one_process_is_refused_until_released(tmp_path):
    with RunStore(tmp_path, {"seed": 0}, who="A"), pytest.raises(WorkDirInUseError, match="B: work_dir .* in use"):
        RunStore(tmp_path, {"seed": 0}, who="B")
    with RunStore(tmp_path, {"seed": 0}, who="B") as store:  # released: the next claim works
        assert store.enabled


def test_a_failed_fit_releases_the_work_dir(tmp_path):
    def four_outputs():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, activation="softmax")])

    x, y = np.zeros((20, 4), "float32"), np.arange(20) % 3
    with pytest.raises(ValueError, match="output 4 values per row but y has 3 classes"):  # after the claim
        BaggingClassifier(four_outputs, n_estimators=1, work_dir=str(tmp_path)).fit(x, y)
    saved = json.loads((tmp_path / "run.json").read_text())
    with RunStore(tmp_path, saved, who="next"):  # no lock left behind
        pass


def test_threads_claiming_one_work_dir_get_one_winner(tmp_path):
    results, barrier = [], threading.Barrier(4)

    def claim():
        barrier.wait()
        try:
            store = RunStore(tmp_path, {"seed": 0}, who="thread")
            results.append("won")
            time.sleep(0.2)
            store.close()
        except WorkDirInUseError:
            results.append("refused")

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("won") >= 1 and len(results) == 4
    assert sorted(os.listdir(tmp_path)) == [LOCK, "run.json"]  # no temporary left


def test_temporary_names_are_unique_per_process_and_call(tmp_path):
    file = str(tmp_path / "member_0.keras")
    names = {temp_name(file) for _ in range(100)}
    assert len(names) == 100
    assert all(n.endswith(".keras") and f"{TEMP}{os.getpid()}-" in n for n in names)


def pid_lock(folder, pid):
    (folder / LOCK).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))


def test_without_flock_a_dead_writers_pid_lock_is_taken_over(tmp_path, monkeypatch):
    monkeypatch.setattr(kfuse.utils.run_store, "fcntl", None)  # the exclusive-create lock (no flock)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=60)
    pid_lock(tmp_path, dead.pid)
    with RunStore(tmp_path, {"seed": 0}, who="next"):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK).exists()  # released


def test_without_flock_a_live_writers_pid_lock_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(kfuse.utils.run_store, "fcntl", None)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        pid_lock(tmp_path, live.pid)
        with pytest.raises(WorkDirInUseError, match=rf'"pid": {live.pid}.*if no fit is running, delete'):
            RunStore(tmp_path, {"seed": 0}, who="next")
    finally:
        live.kill()
        live.wait(timeout=60)
    with RunStore(tmp_path, {"seed": 0}, who="next") as store:  # its writer gone: taken over
        assert store.enabled
