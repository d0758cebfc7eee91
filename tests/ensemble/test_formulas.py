"""Ensemble formulas against independent numpy computations, on tiny real Keras fits."""

import keras
import numpy as np
import pytest

from kfuse.ensemble import (
    AdaBoostClassifier,
    BaggingClassifier,
    FastGeometricEnsemble,
    GradientBoostingClassifier,
    SnapshotEnsemble,
    TriangularCycle,
    caruana,
    ensemble_weights,
    pseudo_residual,
    recompute_batchnorm,
    samme_step,
)


def _data(n=120, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = np.argmax(x[:, :k] + 0.5 * rng.normal(size=(n, k)), axis=1)
    return x, y


def _softmax_net(d=6, k=3, lr=0.05):
    net = keras.Sequential([keras.Input((d,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(k, activation="softmax")])
    net.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", jit_compile=False)
    return net


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_samme_step_matches_numpy():
    w = np.array([0.1, 0.2, 0.3, 0.4])
    wrong = np.array([True, False, False, True])
    error, alpha, new = samme_step(w, wrong, n_classes=3, learning_rate=0.5)
    err = (0.1 + 0.4) / 1.0
    a = 0.5 * (np.log((1 - err) / err) + np.log(2))
    expect = w * np.where(wrong, np.exp(a), 1.0)
    assert error == pytest.approx(err)
    assert alpha == pytest.approx(a)
    np.testing.assert_allclose(new, expect / expect.sum())


def _reloads_equal(model, x, tmp_path, name):
    path = tmp_path / f"{name}.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_adaboost_alphas_weights_and_vote(tmp_path):
    x, y = _data()
    boost = AdaBoostClassifier(_softmax_net, n_estimators=3, fit_params={"epochs": 3, "batch_size": 32},
                               random_state=0).fit(x, y)
    w = np.full(len(y), 1.0 / len(y))
    votes = np.zeros((len(y), 3))
    for member, alpha, error in zip(boost.estimators_, boost.estimator_weights_, boost.estimator_errors_, strict=True):
        pred = np.argmax(member.predict(x, verbose=0), -1)
        wrong = pred != y
        err = np.sum(w[wrong]) / np.sum(w)
        assert error == pytest.approx(err)
        assert alpha == pytest.approx(np.log((1 - err) / err) + np.log(2))
        w = w * np.exp(alpha * wrong)
        w = w / w.sum()
        votes[np.arange(len(y)), pred] += alpha
    graph = boost.model_.predict(x, verbose=0)
    np.testing.assert_allclose(graph, votes / boost.estimator_weights_.sum(), atol=1e-5)
    np.testing.assert_array_equal(boost.predict(x), np.argmax(votes, -1))
    assert boost.model_.branch_names == [f"member_{i}" for i in range(len(boost.estimators_))]
    _reloads_equal(boost.model_, x, tmp_path, "adaboost")


def test_gradient_boosting_residuals_and_summed_graph(tmp_path):
    x, y = _data()

    def build():
        return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])

    gb = GradientBoostingClassifier(build, n_estimators=3, learning_rate=0.3, fit_params={"epochs": 2},
                                    random_state=0).fit(x, y)
    outs = [m.predict(x, verbose=0) for m in gb.estimators_]
    running = 0.3 * (outs[0] + outs[1])
    np.testing.assert_allclose(gb.train_residuals_, np.eye(3)[y] - _softmax(running), atol=1e-5)
    np.testing.assert_allclose(gb.decision_function(x), 0.3 * sum(outs), atol=1e-4)
    _reloads_equal(gb.model_, x, tmp_path, "gradient_boosting")
    np.testing.assert_allclose(pseudo_residual(np.array([0.5, 2.0]), np.array([0.25, 1.0]), "regression"), [0.25, 1.0])


def test_caruana_on_hand_made_predictions():
    y = np.array([0, 1, 0, 1])
    a = np.array([[0.9, 0.1], [0.6, 0.4], [0.9, 0.1], [0.6, 0.4]])  # right on class 0, wrong on 1
    b = np.array([[0.4, 0.6], [0.1, 0.9], [0.4, 0.6], [0.1, 0.9]])  # the mirror image
    c = np.array([[0.5, 0.5]] * 4)
    weights, losses = caruana([a, b, c], y, ensemble_size=4)

    def ll(p):
        return -np.mean(np.log(p[np.arange(4), y]))

    # step 1: a and b tie (same loss), the lowest index wins; step 2: b; then mixes of a, b
    assert losses[0] == pytest.approx(ll(a))
    assert losses[1] == pytest.approx(ll((a + b) / 2))
    expected = [ll(a), ll((a + b) / 2)]
    counts = np.array([1.0, 1.0, 0.0])
    total = a + b
    for step in (3, 4):
        cand = [ll((total + p) / step) for p in (a, b, c)]
        best = min(cand)
        tied = [j for j, v in enumerate(cand) if v <= best + 1e-12]
        pick = [j for j in tied if counts[j] > 0][0] if any(counts[j] > 0 for j in tied) else tied[0]
        counts[pick] += 1
        total = total + (a, b, c)[pick]
        expected.append(cand[pick])
    np.testing.assert_allclose(losses, expected)
    best = int(np.argmin(expected))
    assert weights[2] == 0.0
    assert weights.sum() == pytest.approx(1.0)
    assert weights[0] == pytest.approx(0.5) and best == 1


def test_caruana_ties_go_to_members_already_in():
    y = np.array([0, 0])
    same = np.array([[0.8, 0.2], [0.8, 0.2]])
    weights, _ = caruana([same, same.copy(), same.copy()], y, ensemble_size=5)
    np.testing.assert_allclose(weights, [1.0, 0.0, 0.0])


def test_optimize_weights_on_the_simplex():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    good = _softmax(np.eye(3)[y] * 2 + rng.normal(size=(200, 3)))
    other = _softmax(np.eye(3)[y] * 1.5 + rng.normal(size=(200, 3)))
    noise = _softmax(rng.normal(size=(200, 3)))
    w = ensemble_weights([good, other, noise], y, method="optimize")
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0)

    def ll(v):
        p = v[0] * good + v[1] * other + v[2] * noise
        return -np.mean(np.log(p[np.arange(200), y]))

    grid = [(a, b, 1 - a - b) for a in np.linspace(0, 1, 41) for b in np.linspace(0, 1, 41) if a + b <= 1 + 1e-9]
    assert ll(w) <= min(ll(v) for v in grid) + 1e-4
    metric = ensemble_weights([good, noise], y, method="metric", temperature=0.05)
    acc = np.array([np.mean(np.argmax(p, -1) == y) for p in (good, noise)])
    expect = np.exp((acc - acc.max()) / 0.05)
    np.testing.assert_allclose(metric, expect / expect.sum())


def test_bagging_oob_as_scikit_learn_defines_it():
    x, y = _data()
    bag = BaggingClassifier(_softmax_net, n_estimators=3, max_samples=0.8, oob_score=True,
                            fit_params={"epochs": 2}, random_state=0).fit(x, y)
    n = len(y)
    total = np.zeros((n, 3))
    for member, rows in zip(bag.estimators_, bag.estimators_samples_, strict=True):
        assert len(rows) == round(0.8 * n)
        mask = np.ones(n, bool)
        mask[rows] = False
        total[mask] += member.predict(x[mask], verbose=0)
    with np.errstate(invalid="ignore"):
        decision = total / total.sum(1, keepdims=True)
    np.testing.assert_allclose(bag.oob_decision_function_, decision, atol=1e-5)
    assert bag.oob_score_ == pytest.approx(np.mean(np.argmax(np.nan_to_num(decision, nan=-1), 1) == y))
    mean = np.mean([m.predict(x, verbose=0) for m in bag.estimators_], axis=0)
    np.testing.assert_allclose(bag.model_.predict(x, verbose=0), mean, atol=1e-5)


def test_snapshot_schedule_and_triangular_cycle():
    x, y = _data(n=64)

    def build():
        return keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])

    snap = SnapshotEnsemble(build, n_estimators=2, epochs=4, batch_size=16, learning_rate=0.1).fit(x, y)
    steps = 4 * 4
    period = steps / 2
    t = np.arange(steps)
    expect = 0.1 / 2 * (np.cos(np.pi * np.mod(t, period) / period) + 1)
    np.testing.assert_allclose(snap.learning_rates_, expect, rtol=1e-5, atol=1e-7)
    assert len(snap.estimators_) == 2
    assert not np.allclose(snap.estimators_[0].get_weights()[0], snap.estimators_[1].get_weights()[0])
    cyc = TriangularCycle(0.05, 1e-4, cycle_steps=8)
    for step in range(16):
        u = (step % 8 + 1) / 8
        want = (1 - 2 * u) * 0.05 + 2 * u * 1e-4 if u <= 0.5 else (2 - 2 * u) * 1e-4 + (2 * u - 1) * 0.05
        assert float(cyc(step)) == pytest.approx(want, rel=1e-5)
    fge = FastGeometricEnsemble(build, n_estimators=2, epochs=1, cycle=2, batch_size=16).fit(x, y)
    assert fge.model_.branch_names == ["member_0", "member_1"]


def test_batchnorm_recomputed_as_the_training_average():
    x = np.random.default_rng(2).normal(3.0, 2.0, size=(64, 5)).astype("float32")
    net = keras.Sequential([keras.Input((5,)), keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    recompute_batchnorm(net, x, batch_size=16)
    bn = net.layers[0]
    batches = x.reshape(4, 16, 5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), batches.mean(1).mean(0), rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), batches.var(1).mean(0), rtol=1e-4)
    assert bn.momentum == pytest.approx(0.99)


def test_swa_is_the_average_of_the_swa_epochs_weights():
    from kfuse.ensemble import SWA

    x, y = _data(n=64)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append([keras.ops.convert_to_numpy(v) for v in self.model.trainable_weights])

    def build():
        return keras.Sequential([keras.Input((6,)), keras.layers.BatchNormalization(), keras.layers.Dense(3)])

    swa = SWA(build, epochs=1, swa_epochs=3, batch_size=16, fit_params={"callbacks": [Record()]}).fit(x, y)
    assert len(seen) == 4 and swa.n_averaged_ == 3
    for got, *phase in zip(swa.network_.trainable_weights, *seen[1:], strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), np.mean(phase, axis=0), atol=1e-6)
    assert swa.model_.branch_names == ["member_0"]
