"""FGE's warm-up and cyclic phases share one optimizer and one trace, and train exactly what a
second compile with a fresh optimizer trained (torchensemble's and Garipov et al.'s rule)."""

import keras
import numpy as np
import pytest

from kfuse.ensemble import FastGeometricEnsemble, base
from kfuse.ensemble.one_run import make_optimizer
from kfuse.ensemble.snapshots import TriangularCycle, WarmUpThenCycle, _cycle_seeds
from kfuse.trainers.members import fit_member
from tests.ensemble import resumable_net as net

X = np.random.default_rng(3).normal(size=(80, 6)).astype("float32")
Y = (X[:, 0] - X[:, 3] > 0).astype("int64")
STEPS = 5  # 80 rows, batch 16


def _two_compiles(fge):
    """The reference: warm-up under one optimizer, then a fresh optimizer for the cycles."""
    model = base.new_member(net, fge._seed(0), "classification", "test", 0)
    seeds = _cycle_seeds(fge.n_estimators + 1)
    # the warm-up rate: `warmup_learning_rate`, else the default 1e-3 (issue 35 renamed `learning_rate`)
    model.compile(optimizer=make_optimizer(fge.optimizer, fge.warmup_learning_rate or 1e-3, "test"), loss=model.loss,
                  jit_compile=False)
    fit_member(model, X, Y, {"epochs": fge.epochs, "batch_size": 16, "seed": seeds[0]})
    cycle = TriangularCycle(fge.lr_1, fge.lr_2, fge.cycle * STEPS)
    model.compile(optimizer=make_optimizer(fge.optimizer, cycle, "test"), loss=model.loss, jit_compile=False)
    snaps = []
    for c in range(fge.n_estimators):
        epochs = fge.cycle // 2 if c == 0 else fge.cycle
        fit_member(model, X, Y, {"epochs": epochs, "batch_size": 16, "seed": seeds[c + 1]})
        snaps.append([np.asarray(w) for w in model.get_weights()])
    return snaps


# adagrad: its accumulators start at 0.1, so the reset must restore the built values, not zeros
@pytest.mark.parametrize("optimizer", ["adam", "adagrad", keras.optimizers.Adam(epsilon=1e-8),
                                       {"class_name": "rmsprop", "config": {"rho": 0.8}}])
def test_one_optimizer_trains_what_a_fresh_one_per_phase_trains(optimizer):
    fge = FastGeometricEnsemble(net, n_estimators=3, epochs=2, cycle=2, lr_1=5e-2, lr_2=1e-3, batch_size=16,
                                optimizer=optimizer, random_state=4)
    fge.fit(X, Y)
    want = _two_compiles(fge)
    for got_snap, want_snap in zip(fge.estimators_, want, strict=True):
        for got, expect in zip(got_snap.get_weights(), want_snap, strict=True):
            np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-7)
    # the cyclic phase really ran on the triangular rate: the last snapshot differs from lr 1e-3 training
    assert not np.allclose(fge.estimators_[0].get_weights()[0], fge.estimators_[1].get_weights()[0])


def test_the_schedule_switches_phase_and_survives_a_config_round_trip(tmp_path):
    rate = WarmUpThenCycle(1e-3, TriangularCycle(0.05, 1e-4, cycle_steps=4))
    assert [float(rate(s)) for s in range(4)] == pytest.approx([1e-3] * 4)
    rate.cyclic.assign(1.0)
    tri = TriangularCycle(0.05, 1e-4, cycle_steps=4)
    assert [float(rate(s)) for s in range(4)] == pytest.approx([float(tri(s)) for s in range(4)])
    again = WarmUpThenCycle.from_config(rate.get_config())
    assert [float(again(s)) for s in range(4)] == pytest.approx([float(tri(s)) for s in range(4)])
    # a snapshot keeps the compile config it was taken with, and reloads from .keras
    fge = FastGeometricEnsemble(net, n_estimators=2, epochs=1, cycle=2, batch_size=16, random_state=0).fit(X, Y)
    path = str(tmp_path / "snap.keras")
    fge.estimators_[1].save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(X, verbose=0), fge.estimators_[1].predict(X, verbose=0), rtol=1e-6)
