"""align (weight matching), interpolation_curve and the soups on real Keras models."""

import keras
import matplotlib
import numpy as np
import pytest

from kfuse.merge import align, greedy_soup, interpolation_curve
from kfuse.merge.align import permutation_spec

matplotlib.use("Agg")


def resnet():
    inp = keras.Input((12, 1))
    x = keras.layers.Conv1D(6, 3, activation="relu")(inp)
    x = keras.layers.BatchNormalization()(x)
    y = keras.layers.Conv1D(6, 3, padding="same", activation="relu")(x)
    x = keras.layers.Add()([x, y])
    x = keras.layers.MaxPooling1D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(8, activation="relu")(x)
    return keras.Model(inp, keras.layers.Dense(3)(x))


def _permuted_copy(model, rng):
    """model with random unit permutations applied to every group: a known answer."""
    sizes, axes = permutation_spec(model)
    from kfuse.merge.align import _permute

    perms = {g: rng.permutation(n) for g, n in sizes.items()}
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    by = {}
    for e in axes:
        by.setdefault(e[:2], []).append(e)
    for (li, wi), entries in by.items():
        w = model.layers[li].weights[wi].numpy()
        copy.layers[li].weights[wi].assign(_permute(w, entries, perms))
    return copy


def test_align_recovers_a_hidden_permutation(rng):
    a = resnet()
    for layer in a.layers:  # non-trivial BN statistics
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(size=6).astype("float32"))
    x = rng.normal(size=(20, 12, 1)).astype("float32")
    b = _permuted_copy(a, rng)
    assert not np.allclose(b.get_weights()[0], a.get_weights()[0])
    np.testing.assert_allclose(b.predict(x, verbose=0), a.predict(x, verbose=0), atol=1e-5)
    aligned = align(a, b, data=x)
    for wa, wb in zip(a.get_weights(), aligned.get_weights(), strict=False):
        np.testing.assert_allclose(wb, wa, atol=1e-6)


def test_align_keeps_function_of_b(rng):
    a, b = resnet(), resnet()
    x = rng.normal(size=(20, 12, 1)).astype("float32")
    aligned = align(a, b, data=x)
    np.testing.assert_allclose(aligned.predict(x, verbose=0), b.predict(x, verbose=0), atol=1e-5)
    inner = sum(float(np.sum(u * v)) for u, v in zip(a.get_weights()[:2], aligned.get_weights()[:2], strict=False))
    naive = sum(float(np.sum(u * v)) for u, v in zip(a.get_weights()[:2], b.get_weights()[:2], strict=False))
    assert inner >= naive


def test_align_refuses_unsupported_layers():
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Reshape((3, 1)),
                          keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="cannot permute layer 'reshape' \\(Reshape\\)"):
        align(m, m)
    inp = keras.Input((4,))
    c = keras.layers.Concatenate()([keras.layers.Dense(2)(inp), keras.layers.Dense(2)(inp)])
    m = keras.Model(inp, keras.layers.Dense(1)(c))
    with pytest.raises(ValueError, match="Concatenate"):
        align(m, m)
    with pytest.raises(ValueError, match="model_b differs from model_a"):
        align(resnet(), keras.Sequential([keras.Input((12, 1)), keras.layers.Flatten(),
                                          keras.layers.Dense(3)]))


def test_interpolation_curve_end_points_and_plot(rng):
    a, b = resnet(), resnet()
    x = rng.normal(size=(40, 12, 1)).astype("float32")
    y = rng.integers(0, 3, 40)
    curve = interpolation_curve(a, b, (x, y), steps=5)
    from kfuse.merge.soups import accuracy

    assert curve.accuracy[0] == accuracy(y, a.predict(x, verbose=0))
    assert curve.accuracy[-1] == accuracy(y, b.predict(x, verbose=0))
    assert curve.loss.shape == (5,) and np.all(curve.loss > 0)
    assert curve.barrier >= 0
    ax = curve.plot(label="naive")
    assert len(ax.lines) == 1
    with pytest.raises(TypeError, match="data=\\(x, y\\)"):
        interpolation_curve(a, b, x)


def test_greedy_soup_on_trained_models(mnist1d):
    (x, y), (xt, yt) = mnist1d
    xv, yv = x[3000:], y[3000:]
    pre = keras.Sequential([keras.Input((40,)), keras.layers.Dense(64, activation="relu"),
                            keras.layers.Dense(10)])
    pre.compile(keras.optimizers.Adam(1e-3),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pre.fit(x[:3000], y[:3000], epochs=2, batch_size=200, verbose=0)
    models = []
    for seed, lr in [(1, 1e-3), (2, 3e-3), (3, 1e-2)]:
        keras.utils.set_random_seed(seed)
        m = keras.models.clone_model(pre)
        m.set_weights(pre.get_weights())
        m.compile(keras.optimizers.Adam(lr),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        m.fit(x[:3000], y[:3000], epochs=1, batch_size=200, verbose=0)
        models.append(m)
    result = greedy_soup(models, validation_data=(xv, yv))
    assert result.ingredients[0] == max(result.scores, key=result.scores.get)
    assert result.score >= max(result.scores.values())
    assert result.score > 0.3  # 10 classes: well above chance
    assert len(result.history) == 3
    soup_acc = np.mean(result.model.predict(xv, verbose=0).argmax(1) == yv)
    assert soup_acc == pytest.approx(result.score)
    with pytest.raises(ValueError, match="needs validation_data"):
        greedy_soup(models)


def _mlp():
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(12, activation="relu"),
                             keras.layers.Dense(10, activation="relu"), keras.layers.Dense(3)])


def test_weight_matching_recovers_an_exact_permutation_and_beats_one_pass(rng):
    from kfuse.merge.align import _objective, _spec, weight_matching

    a = _mlp()
    b = _permuted_copy(a, rng)
    aligned = align(a, b)  # data-free weight matching
    for wa, wb in zip(a.get_weights(), aligned.get_weights(), strict=True):
        np.testing.assert_allclose(wb, wa, atol=1e-6)
    # two unrelated networks: restarts keep the best objective, never below one run
    a, b = _mlp(), _mlp()
    sizes, axes, _ = _spec(a)
    keys = {(li, wi) for li, wi, *_ in axes}
    wa = {k: a.layers[k[0]].weights[k[1]].numpy() for k in keys}
    wb = {k: b.layers[k[0]].weights[k[1]].numpy() for k in keys}
    one = _objective(wa, wb, axes, weight_matching(wa, wb, sizes, axes, max_iter=1, restarts=1))
    single = _objective(wa, wb, axes, weight_matching(wa, wb, sizes, axes, restarts=1))
    best = _objective(wa, wb, axes, weight_matching(wa, wb, sizes, axes))
    ident = _objective(wa, wb, axes, {g: np.arange(n) for g, n in sizes.items()})
    assert best >= single - 1e-9 and single >= one - 1e-9 and one >= ident - 1e-9


def test_weight_matching_ignores_batchnorm_moving_statistics(rng):
    """The permutation comes from the trainable weights: moving statistics of any size
    (here a thousand times the kernels') are permuted with their units but do not choose it."""
    a = resnet()
    bn_a = next(layer for layer in a.layers if isinstance(layer, keras.layers.BatchNormalization))
    bn_a.moving_mean.assign(1e3 * rng.normal(size=bn_a.moving_mean.shape))
    bn_a.moving_variance.assign(1e3 * rng.uniform(1, 2, size=bn_a.moving_variance.shape))
    b = _permuted_copy(a, rng)
    noisy = keras.models.clone_model(b)
    noisy.set_weights(b.get_weights())
    bn = next(layer for layer in noisy.layers if isinstance(layer, keras.layers.BatchNormalization))
    bn.moving_mean.assign(1e3 * rng.normal(size=bn.moving_mean.shape))
    bn.moving_variance.assign(1e3 * rng.uniform(1, 2, size=bn.moving_variance.shape))
    aligned = align(a, noisy)
    for wa, wn, w in zip(a.weights, aligned.weights, noisy.weights, strict=True):
        if w.name in ("moving_mean", "moving_variance"):
            continue  # noisy's own statistics, permuted: not a's
        np.testing.assert_allclose(wn.numpy(), wa.numpy(), atol=1e-6, err_msg=w.path)
    # and the statistics travel with their units: the function of `noisy` is unchanged
    x = rng.normal(size=(8, 12, 1)).astype("float32")
    np.testing.assert_allclose(aligned.predict(x, verbose=0), noisy.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("restarts", [0, -1, 1.5, True])
def test_weight_matching_refuses_a_restart_count_below_one(restarts):
    with pytest.raises(ValueError, match=r"restarts must be an integer >= 1.*got"):
        align(_mlp(), _mlp(), restarts=restarts)


def _bn_mlp():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8), keras.layers.BatchNormalization(),
                             keras.layers.ReLU(), keras.layers.Dense(3)])


SEED_FOOLING_RAW = 0  # every weight drawn from it: a case where raw matching is fooled


def test_weight_matching_folds_batchnorm_and_sees_through_a_rescaling():
    """a's units have kernels of very different norms that its BatchNorm evens out (variance =
    norm^2); b is a's units permuted AND each rescaled by c (kernel, bias, moving mean by c,
    moving variance by c^2: the same function). Matching the folded units recovers the
    permutation exactly; matching the raw kernels does not (large-c columns grab large-norm rows)."""
    from kfuse.merge.align import _fold, _spec

    rng = np.random.default_rng(SEED_FOOLING_RAW)
    a = _bn_mlp()
    a.layers[3].kernel.assign(rng.normal(scale=0.5, size=(8, 3)).astype("float32"))
    dense, bn = a.layers[0], a.layers[1]
    norms = np.exp(rng.uniform(-2, 2, 8))
    kernel = rng.normal(size=(6, 8))
    dense.kernel.assign((kernel / np.linalg.norm(kernel, axis=0) * norms).astype("float32"))
    bn.moving_mean.assign(rng.normal(size=8).astype("float32"))
    bn.moving_variance.assign((norms**2 - bn.epsilon).astype("float32"))
    b = _permuted_copy(a, rng)
    c = np.exp(rng.uniform(-3, 3, 8)).astype("float32")
    dense, bnb = b.layers[0], b.layers[1]
    dense.kernel.assign(dense.kernel.numpy() * c)
    dense.bias.assign(dense.bias.numpy() * c)
    bnb.moving_mean.assign(bnb.moving_mean.numpy() * c)
    bnb.moving_variance.assign((bnb.moving_variance.numpy() + bnb.epsilon) * c**2 - bnb.epsilon)
    x = rng.normal(size=(32, 6)).astype("float32")
    np.testing.assert_allclose(b.predict(x, verbose=0), a.predict(x, verbose=0), rtol=1e-4, atol=1e-4)

    def folded(model):
        _, axes, _ = _spec(model)
        keys = {(li, wi) for li, wi, *_ in axes}
        return _fold(model, {k: model.layers[k[0]].weights[k[1]].numpy() for k in keys})[0]

    fa = folded(a)
    # what the units compute: the folded kernel, the folded bias (in beta), the last Dense
    scored = [(0, 0), (1, 1), (3, 0)]
    for fold, exact in ((True, True), (False, False)):
        fb = folded(align(a, b, data=x, fold_batchnorm=fold))
        same = all(np.allclose(fa[k], fb[k], atol=1e-4) for k in scored)
        assert same is exact, f"fold_batchnorm={fold}"
