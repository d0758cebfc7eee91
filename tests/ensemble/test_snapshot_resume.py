"""Snapshot and FGE ensembles resume from work_dir after a real crash and end with the
snapshots of an uninterrupted run (the network's and optimizer's state is kept per cycle)."""

import os

import numpy as np
import pytest

from kfuse.ensemble import FastGeometricEnsemble, SnapshotEnsemble
from tests.ensemble import Crash
from tests.ensemble import resumable_net as net

X = np.random.default_rng(1).normal(size=(96, 6)).astype("float32")
Y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype("int64")


def snapshot(callback, work_dir=None):
    # 3 cycles of 2 epochs
    return SnapshotEnsemble(net, n_estimators=3, epochs=6, batch_size=16, learning_rate=2e-2, optimizer="adam",
                            fit_params={"callbacks": [callback]}, random_state=5, work_dir=work_dir)


def fge(callback, work_dir=None):
    # warm-up 2 epochs, then cycles of 2 epochs: 1 (to the first minimum) + 2 + 2
    return FastGeometricEnsemble(net, n_estimators=3, epochs=2, cycle=2, lr_1=2e-2, lr_2=1e-3, batch_size=16,
                                 fit_params={"callbacks": [callback]}, random_state=5, work_dir=work_dir)


MAKERS = {"snapshot": (snapshot, 6), "fge": (fge, 7)}


def _weights(fitted):
    return [[np.asarray(w) for w in snap.get_weights()] for snap in fitted.estimators_]


@pytest.fixture(scope="module")
def uninterrupted():
    found = {}
    for name, (make, total) in MAKERS.items():
        counter = Crash()
        found[name] = _weights(make(counter).fit(X, Y))
        assert counter.begun == total
    return found


def _assert_same(resumed, expected):
    assert len(resumed) == len(expected)
    for got_snap, want_snap in zip(resumed, expected, strict=True):
        for got, want in zip(got_snap, want_snap, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "crash_at", "left"), [
    ("snapshot", 1, 6), ("snapshot", 4, 4), ("snapshot", 6, 2),  # nothing finished, 1 cycle, 2 cycles
    ("fge", 2, 7), ("fge", 3, 5), ("fge", 5, 4),  # in the warm-up, in cycle 0 (warm-up kept), in cycle 1
])
def test_resume_after_a_crash_ends_with_the_uninterrupted_snapshots(uninterrupted, tmp_path, name, crash_at, left):
    make, _ = MAKERS[name]
    work = str(tmp_path / name)
    with pytest.raises(RuntimeError, match=f"crash at epoch {crash_at}"):
        make(Crash(at=crash_at), work).fit(X, Y)
    assert not [f for f in os.listdir(work) if f.endswith(".tmp")]
    counter = Crash()
    resumed = make(counter, work).fit(X, Y)
    assert counter.begun == left  # only what the crashed run had not finished was trained again
    _assert_same(_weights(resumed), uninterrupted[name])


@pytest.mark.parametrize("name", list(MAKERS))
def test_a_finished_run_reloads_without_training(uninterrupted, tmp_path, name):
    make, _ = MAKERS[name]
    work = str(tmp_path / name)
    make(Crash(), work).fit(X, Y)
    counter = Crash()
    again = make(counter, work).fit(X, Y)
    assert counter.begun == 0
    _assert_same(_weights(again), uninterrupted[name])
