"""Data-aware merging (kfuse.merge.data_aware): each method's numbers against an independent
numpy computation, and its bad inputs."""

import keras
import numpy as np
import pytest

from kfuse.merge import merge, repair_activations
from kfuse.merge.data_aware.adamerging import adamerging
from kfuse.merge.data_aware.fisher import diagonal_fisher, fisher_average
from kfuse.merge.data_aware.zipit import zip_features

RNG = np.random.default_rng(0)


def _rows(n, d, seed):
    return np.random.default_rng(seed).normal(size=(n, d)).astype("float32")


def _dense(activation=None, use_bias=True):
    return keras.Sequential([keras.Input((3,)),
                             keras.layers.Dense(2, activation=activation, use_bias=use_bias)])


def _mlp(widths=(8,), activation="relu", classes=3):
    layers = [keras.Input((4,))]
    layers += [keras.layers.Dense(w, activation=activation) for w in widths]
    return keras.Sequential(layers + [keras.layers.Dense(classes)])


def _near(model, seed, scale=0.2):
    out = keras.models.clone_model(model)
    rng = np.random.default_rng(seed)
    out.set_weights([w + scale * rng.normal(size=w.shape) for w in model.get_weights()])
    return out


def _np(v):
    return keras.ops.convert_to_numpy(v).astype("float64")


# RegMean ------------------------------------------------------------------------------------

def _augmented(x):
    return np.concatenate([x.astype("float64"), np.ones((len(x), 1))], axis=1)


def _stacked(model):
    layer = model.layers[0]
    return np.concatenate([_np(layer.kernel), _np(layer.bias)[None]], axis=0)


def test_regmean_closed_form_matches_numpy():
    a, b = _dense(), _dense()
    x1, x2 = _rows(30, 3, 1), _rows(20, 3, 2) * 2.0
    merged = merge([a, b], "regmean", data=[x1, x2], alpha=0.9)
    grams = [_augmented(x).T @ _augmented(x) for x in (x1, x2)]
    scaled = [0.9 * g + 0.1 * np.diag(np.diag(g)) for g in grams]
    expected = np.linalg.inv(sum(scaled)) @ (scaled[0] @ _stacked(a) + scaled[1] @ _stacked(b))
    np.testing.assert_allclose(_stacked(merged), expected, atol=1e-5)
    assert not np.allclose(expected, (_stacked(a) + _stacked(b)) / 2, atol=1e-3)


def test_regmean_alpha_one_is_least_squares_on_all_inputs():
    a, b = _dense(), _dense()
    x1, x2 = _rows(30, 3, 3), _rows(25, 3, 4) + 1.0
    merged = merge([a, b], "regmean", data=[x1, (x2, np.zeros(25))], alpha=1.0)
    design = np.concatenate([_augmented(x1), _augmented(x2)])
    target = np.concatenate([_augmented(x1) @ _stacked(a), _augmented(x2) @ _stacked(b)])
    solution = np.linalg.lstsq(design, target, rcond=None)[0]
    np.testing.assert_allclose(_stacked(merged), solution, atol=1e-5)


def test_regmean_conv_is_least_squares_on_patches():
    def conv():
        return keras.Sequential([keras.Input((6, 2)), keras.layers.Conv1D(3, 3),
                                 keras.layers.Flatten(), keras.layers.Dense(2)])
    a, b = conv(), conv()
    x1, x2 = RNG.normal(size=(10, 6, 2)), RNG.normal(size=(12, 6, 2))
    merged = merge([a, b], "regmean", data=[x1.astype("float32"), x2.astype("float32")],
                   alpha=1.0)

    def patches(x):  # independent im2col: window positions x (tap, channel)
        rows = [x[:, p:p + 3, :].reshape(len(x), -1) for p in range(4)]
        return _augmented(np.stack(rows, 1).reshape(-1, 6))

    def stacked(model):
        layer = model.layers[0]
        return np.concatenate([_np(layer.kernel).reshape(6, 3), _np(layer.bias)[None]])

    design = np.concatenate([patches(x1), patches(x2)])
    target = np.concatenate([patches(x1) @ stacked(a), patches(x2) @ stacked(b)])
    np.testing.assert_allclose(stacked(merged), np.linalg.lstsq(design, target, rcond=None)[0],
                               atol=1e-4)


# Fisher -------------------------------------------------------------------------------------

def _analytic_fisher(model, x):
    """Mean squared gradient of log softmax(xW + b)[argmax] (independent of any autodiff)."""
    kernel, bias = _np(model.layers[0].kernel), _np(model.layers[0].bias)
    logits = x.astype("float64") @ kernel + bias
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    residual = np.eye(p.shape[1])[p.argmax(1)] - p
    grad_w = x[:, :, None] * residual[:, None, :]
    return [np.mean(grad_w ** 2, 0), np.mean(residual ** 2, 0)]


def test_diagonal_fisher_matches_the_analytic_gradient():
    model, x = _dense(), _rows(40, 3, 5)
    for got, expected in zip(diagonal_fisher(model, x, batch_size=16), _analytic_fisher(model, x),
                             strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)


def test_fisher_merge_is_the_fisher_weighted_average():
    a, b = _dense("softmax"), _dense("softmax")
    x1, x2 = _rows(30, 3, 6), _rows(30, 3, 7)
    merged = merge([a, b], "fisher", data=[x1, x2],
                   model_parameters=[{"weight": 1.0}, {"weight": 3.0}])
    fa, fb = _analytic_fisher(a, x1), _analytic_fisher(b, x2)
    for k, var in enumerate(merged.weights):
        fa_k, fb_k = np.maximum(fa[k], 1e-6), 3.0 * np.maximum(fb[k], 1e-6)
        expected = (fa_k * _np(a.weights[k]) + fb_k * _np(b.weights[k])) / (fa_k + fb_k)
        np.testing.assert_allclose(_np(var), expected, rtol=1e-4, atol=1e-6)


def test_fisher_average_with_equal_fishers_is_the_average():
    arrays = [RNG.normal(size=(3, 4)) for _ in range(3)]
    fisher = RNG.uniform(0.1, 2.0, size=(3, 4))
    np.testing.assert_allclose(fisher_average(arrays, [fisher] * 3, [1.0] * 3),
                               np.mean(arrays, 0), atol=1e-12)
    # a parameter no model is sure about (Fisher 0 everywhere) gets the plain average too
    zero = np.zeros((3, 4))
    np.testing.assert_allclose(fisher_average(arrays, [zero] * 3, [1.0] * 3),
                               np.mean(arrays, 0), atol=1e-12)


# AdaMerging ---------------------------------------------------------------------------------

def _entropy(model, xs):
    total = 0.0
    for x in xs:
        logits = model.predict(x, verbose=0).astype("float64")
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        total += float(np.mean(-np.sum(p * np.log(p), 1)))
    return total


def test_adamerging_lowers_entropy_and_keeps_coefficients_in_range():
    base = _mlp()
    a, b = _near(base, 1, 0.5), _near(base, 2, 0.5)
    xs = [_rows(32, 4, 8), _rows(32, 4, 9)]
    result = adamerging([a, b], base, xs, steps=20, lr=0.1, batch_size=32)
    start = merge([a, b], "task_arithmetic", base=base, **{"lambda": 0.3})
    assert _entropy(result.model, xs) < _entropy(start, xs) - 0.01
    assert result.coefficients.shape == (2, 2) and result.groups == [layer.name for layer in base.layers]
    assert np.all(result.coefficients >= 0) and np.all(result.coefficients <= 1)
    assert result.history[-1] < result.history[0]
    lam = result.coefficients
    for j, var in enumerate(result.model.weights):  # theta = base + sum_k lambda_k^l tau_k
        g = j // 2
        expected = _np(base.weights[j]) + sum(
            lam[k, g] * (_np(m.weights[j]) - _np(base.weights[j])) for k, m in enumerate((a, b)))
        np.testing.assert_allclose(_np(var), expected, atol=1e-5)
    wild = adamerging([a, b], base, xs, granularity="task", steps=5, lr=10.0, batch_size=32)
    assert wild.coefficients.shape == (2, 1)
    assert np.all((wild.coefficients >= 0) & (wild.coefficients <= 1))
    assert np.any((wild.coefficients == 0) | (wild.coefficients == 1))


# REPAIR -------------------------------------------------------------------------------------

def _hidden_stats(model, x):
    """Mean / std of each hidden Dense pre-activation, by a numpy forward pass."""
    h, stats = x.astype("float64"), []
    for layer in model.layers[:-1]:
        pre = h @ _np(layer.kernel) + _np(layer.bias)
        stats.append((pre.mean(0), pre.std(0)))
        h = np.maximum(pre, 0)
    return stats


def test_repair_activations_matches_endpoint_statistics():
    a, b = _mlp((16, 16)), _mlp((16, 16))
    x = _rows(200, 4, 10)
    merged = merge([a, b], "linear", model_parameters=[{"weight": 1.0}, {"weight": 3.0}])
    before = _hidden_stats(merged, x)
    repair_activations(merged, [a, b], x, weights=[1.0, 3.0])
    sa, sb, got = _hidden_stats(a, x), _hidden_stats(b, x), _hidden_stats(merged, x)
    for k in range(2):
        target_mean = 0.25 * sa[k][0] + 0.75 * sb[k][0]
        target_std = 0.25 * sa[k][1] + 0.75 * sb[k][1]
        np.testing.assert_allclose(got[k][0], target_mean, atol=1e-4)
        np.testing.assert_allclose(got[k][1], target_std, rtol=1e-4)
        assert not np.allclose(before[k][1], target_std, rtol=1e-2)
    np.testing.assert_allclose(_np(merged.layers[-1].kernel),  # the output layer is kept
                               0.25 * _np(a.layers[-1].kernel) + 0.75 * _np(b.layers[-1].kernel),
                               atol=1e-6)


# ZipIt --------------------------------------------------------------------------------------

def _permuted(model, seed):
    """``model`` with each hidden layer's units permuted (the same function)."""
    out = keras.models.clone_model(model)
    weights = [_np(w) for w in model.weights]
    rng, previous = np.random.default_rng(seed), None
    for k in range(0, len(weights), 2):
        if previous is not None:
            weights[k] = weights[k][previous]
        if k + 2 < len(weights):
            p = rng.permutation(weights[k].shape[1])
            weights[k], weights[k + 1] = weights[k][:, p], weights[k + 1][p]
            previous = p
    out.set_weights(weights)
    return out


def test_zipit_of_permuted_copies_recovers_the_original():
    a = _mlp((12, 10))
    b = _permuted(a, 11)
    x = _rows(100, 4, 12)
    np.testing.assert_allclose(b.predict(x, verbose=0), a.predict(x, verbose=0), atol=1e-5)
    assert not np.allclose(_np(b.weights[0]), _np(a.weights[0]))
    merged = merge([a, b], "zipit", data=x)
    for got, expected in zip(merged.weights, a.weights, strict=True):
        np.testing.assert_allclose(_np(got), _np(expected), atol=1e-5)
    heads = merge([a, b], "zipit", data=[x[:50], x[50:]], stop_at=1)  # partial: two heads
    assert len(heads.outputs) == 2
    for out in heads.predict(x, verbose=0):
        np.testing.assert_allclose(out, a.predict(x, verbose=0), atol=1e-4)


def test_zipit_merges_within_a_model():
    """Two features of one model that are copies share a group (within-model zipping) unless
    within=False; every group's merged feature is its members' mean."""
    fa = RNG.normal(size=(100, 4))
    fa[:, 1] = fa[:, 0]
    fb = RNG.normal(size=(100, 4))
    m, u = zip_features([fa, fb])
    assert m.shape == (4, 8) and u.shape == (8, 4)
    np.testing.assert_array_equal(u[0], u[1])
    np.testing.assert_allclose(m.sum(1), 1.0)
    np.testing.assert_array_equal(u.sum(1), 1.0)
    _, across = zip_features([fa, fb], within=False)
    assert not np.array_equal(across[0], across[1])
    assert np.all(across[:4].sum(0) <= 1)  # no group holds two features of model 0


# Bad input ----------------------------------------------------------------------------------

def test_data_whose_shapes_do_not_match_the_models():
    a, b = _mlp(), _mlp()
    with pytest.raises(ValueError, match=r"data\[1\] has rows of shape \(5,\); models\[1\] "
                                         r"takes inputs of shape \(4,\)"):
        merge([a, b], "regmean", data=[_rows(8, 4, 0), _rows(8, 5, 0)])
    with pytest.raises(ValueError, match="data is a list of 3 entries for 2 models"):
        merge([a, b], "fisher", data=[_rows(8, 4, 0)] * 3)


def test_data_method_without_data_or_base():
    a, b = _mlp(), _mlp()
    with pytest.raises(ValueError, match="regmean learns from data: pass data="):
        merge([a, b], "regmean")
    with pytest.raises(ValueError, match="adamerging needs base="):
        merge([a, b], "adamerging", data=_rows(8, 4, 0))
    with pytest.raises(ValueError, match="Did you mean 'regmean'"):
        merge([a, b], "regmaen", data=_rows(8, 4, 0))
    with pytest.raises(ValueError, match="method 'regmean' has no parameter 'alpah'.*'alpha'"):
        merge([a, b], "regmean", data=_rows(8, 4, 0), alpah=0.5)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\], got 1.5"):
        merge([a, b], "regmean", data=_rows(8, 4, 0), alpha=1.5)
    with pytest.raises(ValueError, match="'linear' reads weights only; data= is for"):
        merge([a, b], "linear", data=_rows(8, 4, 0))


def test_gradient_methods_on_models_without_trainable_weights():
    a, b = _mlp(), _mlp()
    frozen = keras.models.clone_model(a)
    frozen.trainable = False
    x = _rows(8, 4, 0)
    with pytest.raises(ValueError, match="fisher needs gradients of models\\[0\\]'s trainable "
                                         "weights, but models\\[0\\] has none"):
        merge([frozen, b], "fisher", data=x)
    with pytest.raises(ValueError, match="adamerging needs gradients of base's trainable"):
        merge([a, b], "adamerging", base=frozen, data=x)


def test_zipit_refuses_layers_it_cannot_pair():
    def conv():
        return keras.Sequential([keras.Input((6, 2)), keras.layers.Conv1D(3, 3, name="conv"),
                                 keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"zipit cannot pair layer 'conv' \(Conv1D\) of models\[0\]"):
        merge([conv(), conv()], "zipit", data=RNG.normal(size=(4, 6, 2)).astype("float32"))

    def residual():
        inp = keras.Input((4,))
        h = keras.layers.Dense(4)(inp)
        return keras.Model(inp, keras.layers.Add(name="join")([h, inp]))
    with pytest.raises(ValueError, match=r"zipit cannot pair layer 'join' \(Add\)"):
        merge([residual(), residual()], "zipit", data=_rows(4, 4, 0))
    with pytest.raises(ValueError, match="zipit needs at least 2 models"):
        merge([_mlp()], "zipit", data=_rows(4, 4, 0))
    with pytest.raises(ValueError, match=r"stop_at must be an integer in \[1, 2\]"):
        merge([_mlp(), _mlp()], "zipit", data=_rows(4, 4, 0), stop_at=3)


JAX_SCRIPT = """
import numpy as np, keras
from kfuse.merge import merge
from kfuse.merge.data_aware.fisher import diagonal_fisher
keras.utils.set_random_seed(0)
net = lambda: keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
m, x = net(), np.random.default_rng(0).normal(size=(20, 3)).astype("float32")
k, b = (keras.ops.convert_to_numpy(v).astype("float64") for v in m.weights)
z = x @ k + b
p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
r = np.eye(2)[p.argmax(1)] - p
f = diagonal_fisher(m, x, batch_size=8)
np.testing.assert_allclose(f[0], np.mean((x[:, :, None] * r[:, None]) ** 2, 0), rtol=1e-4)
np.testing.assert_allclose(f[1], np.mean(r ** 2, 0), rtol=1e-4)
merged = merge([net(), net()], "adamerging", base=net(), data=x, steps=3)
print("backend", keras.backend.backend(), merged.count_params())
"""


@pytest.mark.slow
def test_gradient_methods_run_on_jax():
    """Fisher (against the analytic gradient) and AdaMerging with JAX's autodiff, in a
    separate process (the backend is chosen at import)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax")
    done = subprocess.run([sys.executable, "-c", JAX_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300, cwd=os.path.dirname(os.path.dirname(
                              os.path.dirname(os.path.abspath(__file__)))))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "backend jax 8" in done.stdout


def test_tf_data_gives_the_same_merge_as_arrays():
    import tensorflow as tf

    a, b = _dense(), _dense()
    x1, x2 = _rows(30, 3, 14), _rows(20, 3, 15)
    batched = tf.data.Dataset.from_tensor_slices((x1, np.zeros(30))).batch(7)
    unbatched = tf.data.Dataset.from_tensor_slices(x2)
    from_arrays = merge([a, b], "regmean", data=[x1, x2])
    from_datasets = merge([a, b], "regmean", data=[batched, unbatched])
    for got, expected in zip(from_datasets.weights, from_arrays.weights, strict=True):
        np.testing.assert_allclose(_np(got), _np(expected), atol=1e-6)


def test_regmean_on_a_residual_net_with_norms_averages_the_rest_and_repairs_batchnorm():
    def net():
        inp = keras.Input((4,))
        h = keras.layers.Dense(6, name="d1")(inp)
        h = keras.layers.BatchNormalization(name="bn")(h)
        h = keras.layers.Dense(4, activation="relu", name="d2")(h)
        h = keras.layers.LayerNormalization(name="ln")(keras.layers.Add()([h, inp]))
        return keras.Model(inp, keras.layers.Dense(3, name="out")(h))

    a, b = net(), net()
    for m, seed in ((a, 16), (b, 17)):  # norms away from their initial values
        ln = m.get_layer("ln")
        ln.gamma.assign(np.random.default_rng(seed).uniform(0.5, 1.5, 4).astype("float32"))
    x1, x2 = _rows(40, 4, 18), _rows(40, 4, 19)
    merged = merge([a, b], "regmean", data=[x1, x2], alpha=0.9)
    ln = [m.get_layer("ln") for m in (a, b, merged)]
    np.testing.assert_allclose(_np(ln[2].gamma), (_np(ln[0].gamma) + _np(ln[1].gamma)) / 2,
                               atol=1e-6)
    grams = [_augmented(x).T @ _augmented(x) for x in (x1, x2)]
    scaled = [0.9 * g + 0.1 * np.diag(np.diag(g)) for g in grams]

    def first(m):
        layer = m.get_layer("d1")
        return np.concatenate([_np(layer.kernel), _np(layer.bias)[None]])
    expected = np.linalg.solve(sum(scaled), scaled[0] @ first(a) + scaled[1] @ first(b))
    np.testing.assert_allclose(first(merged), expected, atol=1e-5)
    d1_out = _augmented(np.concatenate([x1, x2])) @ expected  # BatchNorm refitted on all rows
    np.testing.assert_allclose(_np(merged.get_layer("bn").moving_mean), d1_out.mean(0), atol=1e-4)


def test_data_aware_merge_reads_keras_files(tmp_path):
    a, b = _dense(), _dense()
    paths = [str(tmp_path / "a.keras"), str(tmp_path / "b.keras")]
    a.save(paths[0])
    b.save(paths[1])
    x = [_rows(20, 3, 20), _rows(20, 3, 21)]
    from_files = merge(paths, "regmean", data=x)
    from_models = merge([a, b], "regmean", data=x)
    for got, expected in zip(from_files.weights, from_models.weights, strict=True):
        np.testing.assert_allclose(_np(got), _np(expected), atol=1e-6)
