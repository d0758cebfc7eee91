"""Shared tiny fits for the engine tests: the same Stacker, bagging and voting ensembles fitted
in this process (the sequential baseline, computed once) and on each engine."""

import functools
import os
import signal
import time

import keras
import numpy as np

import kfuse
from kfuse.ensemble import BaggingClassifier
from tests.stacking import blobs

SETTINGS = {"epochs": 2, "batch_size": 16, "learning_rate": 1e-2}


def dropout_net(t):
    h = keras.layers.Dense(12, activation="relu")(t)
    h = keras.layers.BatchNormalization()(h)
    return keras.layers.Dropout(0.3)(h)  # its random stream must follow its job


def wide_net(t):
    return keras.layers.Dense(6, activation="tanh")(t)


def member():
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dropout(0.2), keras.layers.Dense(3, activation="softmax")])


def data():
    return blobs(90, seed=4)


def stacker(branches=None, **kwargs):
    branches = branches or [kfuse.Branch(dropout_net, name="drop", inputs={"x": (8,)}, fit=SETTINGS),
                            kfuse.Branch(wide_net, name="wide", inputs={"x": (8,)}, fit=SETTINGS)]
    options = {"head": 3, "cv": 2, "refit": True, "seed": 5, "verbose": 0, "meta_fit": {"epochs": 2}}
    return kfuse.Stacker(branches, **{**options, **kwargs})


def ensemble(bootstrap):
    """Bagging (`bootstrap=True`) or voting (`bootstrap=False`: every member on every row)."""
    return BaggingClassifier(member, n_estimators=2, bootstrap=bootstrap, max_samples=1.0,
                             fit_params={"epochs": 2, "batch_size": 16}, random_state=7)


def fits():
    """(name, fitted estimator) of the three fits, in the current engine."""
    x, y = data()
    return {"stacker": stacker().fit({"x": x}, y), "bagging": ensemble(True).fit(x, y),
            "voting": ensemble(False).fit(x, y)}


@functools.lru_cache(maxsize=1)
def sequential():
    """The three fits in this process, one at a time: their predicted probabilities."""
    return probabilities(fits())


def probabilities(fitted):
    x, _ = data()
    return {name: np.asarray(est.predict_proba({"x": x} if name == "stacker" else x)) for name, est in fitted.items()}


class Pause(keras.callbacks.Callback):
    """At the end of its first epoch, writes `<folder>/<pid>.pid` and waits (60 s at most)
    until `<folder>/go` exists: a test kills the process meanwhile. Changes no number."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None):
        if epoch != 0:
            return
        open(os.path.join(self.folder, f"{os.getpid()}.pid"), "w").close()
        deadline = time.time() + 60
        while not os.path.exists(os.path.join(self.folder, "go")) and time.time() < deadline:
            time.sleep(0.05)


def paused_stacker(folder):
    """One base that pauses in every fit (`Pause`), cv=2, no refit: two fold jobs."""
    fit = {**SETTINGS, "callbacks": [Pause(str(folder))]}
    return stacker([kfuse.Branch(wide_net, name="paused", inputs={"x": (8,)}, fit=fit)], refit=False)


def kill_first_worker(folder):
    """Wait for the first `.pid` file in `folder`, kill -9 that process, then let the others go."""
    deadline = time.time() + 120
    while time.time() < deadline:
        pids = [f for f in os.listdir(folder) if f.endswith(".pid")]
        if pids:
            pid = int(pids[0][:-4])
            os.kill(pid, signal.SIGKILL)
            open(os.path.join(folder, "go"), "w").close()
            return pid
        time.sleep(0.05)
    raise AssertionError("no job reached its first epoch end within 120 s")


class TrainFails(keras.layers.Layer):
    """A user's layer that cannot train (raises when called with training=True)."""

    def call(self, x, training=None):
        if training:
            raise ValueError("this layer cannot train")
        return x


def fragile_net(t):
    return keras.layers.Dense(3, activation="softmax")(TrainFails()(t))


def failing_stacker():
    """Two healthy bases and one that fails in every fold."""
    return stacker([kfuse.Branch(wide_net, name="wide", inputs={"x": (8,)}, fit=SETTINGS),
                    kfuse.Branch(dropout_net, name="drop", inputs={"x": (8,)}, fit=SETTINGS),
                    kfuse.Branch(fragile_net, name="fragile", inputs={"x": (8,)}, fit=SETTINGS)])


FAILED = (r"Stacker: training branch 'fragile' \(fold [12]\) failed on worker [^:]+:\d+: "
          r"(?s:.*)this layer cannot train")


def fit_with_a_worker_killed(tmp_path, engine):
    """(result on `engine` with the first worker killed mid-fold, the same fit in this
    process, the killed pid, every pid that ran a job on the engine)."""
    import threading

    x, y = data()
    (tmp_path / "alone").mkdir()
    (tmp_path / "alone" / "go").touch()
    expected = paused_stacker(tmp_path / "alone").fit({"x": x}, y).predict_proba({"x": x})
    folder = tmp_path / "engine"
    folder.mkdir()
    killed = []
    killer = threading.Thread(target=lambda: killed.append(kill_first_worker(str(folder))))
    killer.start()
    with engine():
        got = paused_stacker(folder).fit({"x": x}, y).predict_proba({"x": x})
    killer.join()
    return got, expected, killed[0] if killed else None, {int(f.name[:-4]) for f in folder.glob("*.pid")}
