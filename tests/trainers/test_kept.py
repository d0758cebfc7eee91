"""Workers kept between fits (`kfuse.trainers.kept`): a second fit of an architecture trains
in the first fit's worker, with no copy or trace of its own, and gives what a fit in a new
worker gives, bit for bit."""

import keras
import numpy as np
import pytest

import kfuse
from kfuse.ensemble import FastGeometricEnsemble, SnapshotEnsemble, VotingClassifier
from kfuse.trainers import kept, side_by_side
from kfuse.trainers.epoch_function import EPOCH_FUNCTION_ATTRIBUTE
from tests.helpers import dropout_net

pytestmark = pytest.mark.filterwarnings("ignore::kfuse.ensemble.OptimizerReplacedWarning")
RNG = np.random.default_rng(0)
X = RNG.normal(size=(80, 6)).astype("float32")
Y = (X[:, 0] + X[:, 1] > 0).astype("int64") + (X[:, 2] > 0.5)


def _net():
    return dropout_net(6, hidden=12, rate=0.2)


ENSEMBLES = {
    "voting": lambda: VotingClassifier(_net, n_estimators=3, epochs=2, batch_size=16, random_state=1),
    "snapshot": lambda: SnapshotEnsemble(_net, n_estimators=2, epochs=4, batch_size=16, random_state=1),
    "fge": lambda: FastGeometricEnsemble(_net, n_estimators=2, warmup_epochs=2, cycle=2, batch_size=16,
                                         random_state=1),
}


def _traces(kept_object):
    """Traced epoch functions of a kept object (a Worker, SharedFit or SideBySide)."""
    functions = getattr(kept_object, "_functions", None)  # SideBySide
    if functions is not None:
        return sum(f.traces for f in functions.values())
    epoch = getattr(kept_object, "epoch_function", None)  # SharedFit
    if epoch is None:  # a Worker: the epoch function its model keeps
        epoch = getattr(kept_object.model, EPOCH_FUNCTION_ATTRIBUTE)[2]
    return epoch.traces


@pytest.mark.parametrize("pairs", [True, False], ids=["side_by_side", "one_at_a_time"])
@pytest.mark.parametrize("name", list(ENSEMBLES))
def test_a_second_fit_trains_in_the_kept_worker_bit_for_bit(name, pairs, monkeypatch):
    if name != "voting" and not pairs:
        pytest.skip("one-run ensembles train one network: pairing does not apply")
    monkeypatch.setattr(side_by_side, "group_size", lambda: 2 if pairs else 1)
    kept.clear()
    first = ENSEMBLES[name]().fit(X, Y)
    shelf = kept.shelf()
    assert len(shelf) == 1
    kind, worker = shelf[0]
    assert kind == {"voting": "side_by_side" if pairs else "shared_fit"}.get(name, "one_run")
    traces = _traces(worker)
    second = ENSEMBLES[name]().fit(X, Y)
    assert kept.shelf() == [(kind, worker)]  # taken, trained in, given back
    assert _traces(worker) == traces  # no trace of its own
    for a, b in zip(first.estimators_, second.estimators_, strict=True):
        for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))


def test_the_stacker_refitted_in_kept_pairs_gives_the_same_model(monkeypatch):
    monkeypatch.setattr(side_by_side, "group_size", lambda: 2)

    def stacker():
        keras.utils.set_random_seed(3)
        branches = [kfuse.Branch(_net(), name="net", inputs="x", fit={"epochs": 2, "batch_size": 16})]
        return kfuse.Stacker(branches, head=3, cv=3, seed=4, verbose=0, meta_fit={"epochs": 2})

    kept.clear()
    first = stacker().fit({"x": X}, Y)
    assert [kind for kind, _ in kept.shelf()] == ["side_by_side"]
    second = stacker().fit({"x": X}, Y)
    np.testing.assert_array_equal(first.oof_predictions_["net"], second.oof_predictions_["net"])
    np.testing.assert_array_equal(first.predict({"x": X}), second.predict({"x": X}))


def test_other_architectures_and_large_models_are_not_served_or_kept(monkeypatch):
    monkeypatch.setattr(side_by_side, "group_size", lambda: 1)
    kept.clear()
    VotingClassifier(_net, n_estimators=2, epochs=1, batch_size=16, random_state=0).fit(X, Y)
    (_, worker), = kept.shelf()

    def tanh_net():
        model = _net()
        inp = keras.Input((6,))
        h = keras.layers.Dense(12, activation="tanh")(inp)
        h = keras.layers.Dropout(0.2)(keras.layers.BatchNormalization()(h))
        other = keras.Model(inp, keras.layers.Dense(3)(h))
        other.compile(model.optimizer, model.loss, jit_compile=False)
        return other

    VotingClassifier(tanh_net, n_estimators=2, epochs=1, batch_size=16, random_state=0).fit(X, Y)
    assert len(kept.shelf()) == 2 and kept.shelf()[0][1] is worker  # its own, beside the first
    monkeypatch.setattr(kept, "MAX_PARAMETERS", 10)
    kept.clear()
    VotingClassifier(_net, n_estimators=2, epochs=1, batch_size=16, random_state=0).fit(X, Y)
    assert kept.shelf() == []


def test_the_shelf_is_bounded_by_the_parameters_it_holds(monkeypatch):
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])  # 10 parameters
    large = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6)])  # 30 parameters
    monkeypatch.setattr(kept, "MAX_KEPT_PARAMETERS", 45)
    kept.clear()
    for name in ("a", "b", "c"):
        kept.give_back("worker", name, small)
    assert [o for _, o in kept.shelf()] == ["a", "b", "c"]  # 30 parameters
    kept.give_back("worker", "d", large)  # 60 in all: the oldest two go
    assert [o for _, o in kept.shelf()] == ["c", "d"]
    monkeypatch.setattr(kept, "MAX_KEPT", 1)
    kept.give_back("worker", "e", small)
    assert [o for _, o in kept.shelf()] == ["e"]
    assert kept.take("worker", lambda o: o == "e") == "e" and kept.shelf() == []
