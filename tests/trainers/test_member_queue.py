"""Bagging's members trained two at a time side by side (`kfuse.trainers.member_queue`) are
the members each trained alone gives, bit for bit."""

import keras
import numpy as np

from kfuse.ensemble import BaggingClassifier, base
from kfuse.trainers import epoch_loop, side_by_side

RNG = np.random.default_rng(0)
X = RNG.normal(size=(90, 6)).astype("float32")
Y = np.argmax(X[:, :3], axis=1).astype("int64")
FIT = {"epochs": 3, "batch_size": 16}


def _dropout_net():
    inp = keras.Input((6,))
    h = keras.layers.Dense(12, activation="relu")(inp)
    h = keras.layers.Dropout(0.3)(keras.layers.BatchNormalization()(h))
    return _compiled(keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h)), from_logits=False)


def _wide_net():
    inp = keras.Input((6,))
    return _compiled(keras.Model(inp, keras.layers.Dense(3)(keras.layers.Dense(20, activation="tanh")(inp))))


def _compiled(model, from_logits=True):
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    model.compile(keras.optimizers.Adam(2e-2), loss, jit_compile=False)
    return model


def _bagging(**kwargs):
    return BaggingClassifier([_dropout_net, _wide_net], n_estimators=5, max_samples=0.7, fit_params=FIT,
                             random_state=7, **kwargs)


def _alone(bag, i):
    """Member i as one model trained by itself: built from its seed, `epoch_loop.fit`."""
    specs = [_dropout_net, _wide_net]
    model = base.new_member(specs[i % 2], bag._seed(i), "classification", "test", i)
    rows = bag.estimators_samples_[i]
    epoch_loop.fit(model, X[rows], np.searchsorted(bag.classes_, Y[rows]), verbose=0, **FIT)
    return model


def test_paired_members_equal_each_trained_alone(monkeypatch, side_by_side_calls):
    """Two specs, five members: pairs (0, 2) and (1, 3) of one spec each, member 4 alone.
    Dropout, BatchNorm, bootstrap rows: every weight equal to the bit."""
    calls = side_by_side_calls
    monkeypatch.setattr(side_by_side, "group_size", lambda: 2)
    paired = _bagging().fit(X, Y)
    assert calls == [2, 2]
    for i, member in enumerate(paired.estimators_):
        alone = _alone(paired, i)
        for u, v in zip(member.variables, alone.variables, strict=True):
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=f"member_{i} {u.path}")
    monkeypatch.setattr(side_by_side, "group_size", lambda: 1)
    one_at_a_time = _bagging().fit(X, Y)
    assert calls == [2, 2]
    np.testing.assert_array_equal(paired.model_.predict(X, verbose=0), one_at_a_time.model_.predict(X, verbose=0))
    # and the members learned: far above the majority class on the rows
    accuracy = np.mean(np.argmax(paired.model_.predict(X, verbose=0), 1) == Y)
    assert np.bincount(Y).max() / len(Y) < 0.45 and accuracy > 0.8, accuracy


def test_resumed_work_dir_with_pairs_gives_the_same_ensemble(tmp_path, monkeypatch):
    """Members finish in pairs (0, 2 before 1): a run stopped after some of them resumes to
    the same members."""
    monkeypatch.setattr(side_by_side, "group_size", lambda: 2)
    whole = _bagging(work_dir=tmp_path / "a").fit(X, Y)
    files = sorted(p.name for p in (tmp_path / "a").glob("member_*.keras"))
    assert files == [f"member_{i}.keras" for i in range(5)]
    (tmp_path / "a" / "member_1.keras").unlink()
    (tmp_path / "a" / "member_1.npz").unlink()
    (tmp_path / "a" / "member_3.npz").unlink()
    resumed = _bagging(work_dir=tmp_path / "a").fit(X, Y)
    np.testing.assert_array_equal(whole.model_.predict(X, verbose=0), resumed.model_.predict(X, verbose=0))


def test_settings_that_need_model_fit_still_train_one_at_a_time(monkeypatch):
    monkeypatch.setattr(side_by_side, "group_size", lambda: 2)
    calls = []
    monkeypatch.setattr(side_by_side.SideBySide, "fit", lambda self, models, *a, **k: calls.append(1))
    fit = dict(FIT, class_weight={0: 1.0, 1: 2.0, 2: 1.0})
    bag = BaggingClassifier(_wide_net, n_estimators=2, fit_params=fit, random_state=0).fit(X, Y)
    assert calls == [] and len(bag.estimators_) == 2
