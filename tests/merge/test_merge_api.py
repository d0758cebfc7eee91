"""merge() on real Keras models and .keras files: formulas per weight, parameters, files."""

import warnings

import keras
import numpy as np
import pytest

from kfuse.merge import merge, repair_batchnorm, uniform_soup


def mlp(bn=False, width=6):
    inp = keras.Input((5,))
    x = keras.layers.Dense(width, activation="relu")(inp)
    if bn:
        x = keras.layers.BatchNormalization()(x)
    inner = keras.Sequential([keras.Input((width,)), keras.layers.Dense(4)])
    return keras.Model(inp, inner(x))


@pytest.fixture
def trio():
    return [mlp() for _ in range(3)]


def _w(model):
    return [np.asarray(w) for w in model.get_weights()]


def test_linear_per_weight_and_save_reload(trio, tmp_path):
    merged = merge(trio, "linear", model_parameters=[{"weight": 1.0}, {"weight": 2.0}, {}])
    for got, *ws in zip(_w(merged), *map(_w, trio), strict=False):
        np.testing.assert_allclose(got, (ws[0] + 2 * ws[1] + ws[2]) / 4, rtol=1e-6, atol=1e-7)
    path = str(tmp_path / "merged.keras")
    merged.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(0).normal(size=(8, 5)).astype("float32")
    np.testing.assert_allclose(again.predict(x, verbose=0), merged.predict(x, verbose=0))
    assert merged is not trio[0] and merged.count_params() == trio[0].count_params()
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        merged.export(str(tmp_path / "served"), verbose=False)
        served = tf.saved_model.load(str(tmp_path / "served"))
        np.testing.assert_allclose(served.serve(x).numpy(), merged.predict(x, verbose=0),
                                   rtol=1e-5, atol=1e-6)


def test_streaming_files_equal_in_memory(trio, tmp_path):
    base = mlp()
    paths = []
    for i, m in enumerate([base] + trio):
        paths.append(str(tmp_path / f"m{i}.keras"))
        m.save(paths[-1])
    for method, params in [("ties", {"density": 0.5}), ("dare_ties", {"density": 0.7, "seed": 3}),
                           ("model_stock", {}), ("task_arithmetic", {"lambda_": 0.5})]:
        a = merge(paths[1:], method, base=paths[0], **params)
        b = merge(trio, method, base=base, **params)
        mixed = merge([paths[1], trio[1], paths[3]], method, base=base, **params)
        for x, y, z in zip(_w(a), _w(b), _w(mixed), strict=False):
            np.testing.assert_allclose(x, y, rtol=1e-6)
            np.testing.assert_allclose(x, z, rtol=1e-6)


def test_slerp_base_is_t0(trio):
    a, b, _ = trio
    np.testing.assert_allclose(_w(merge([a, b], "slerp", t=0.0))[0], _w(a)[0], atol=1e-6)
    np.testing.assert_allclose(_w(merge([b], "slerp", base=a, t=1.0))[0], _w(b)[0], atol=1e-6)


def test_per_model_filter_and_gradient(trio):
    # per-model weights, then a filter on the inner Dense, then a depth gradient for t
    merged = merge(trio[:2], "linear", model_parameters=[{"weight": 3.0}, {"weight": 1.0}])
    np.testing.assert_allclose(_w(merged)[0], 0.75 * _w(trio[0])[0] + 0.25 * _w(trio[1])[0],
                               rtol=1e-6)
    inner = trio[0].layers[-1].layers[0].name
    merged = merge(trio[:2], "linear",
                   weight=[{"filter": inner, "value": 0.0}, {"value": 1.0}],
                   model_parameters=[{}, {"weight": 1.0}])
    np.testing.assert_allclose(_w(merged)[0], (_w(trio[0])[0] + _w(trio[1])[0]) / 2, rtol=1e-6)
    np.testing.assert_allclose(_w(merged)[2], _w(trio[1])[2], rtol=1e-6)  # model 0 weight 0
    merged = merge(trio[:2], "slerp", t=[0.0, 1.0])  # first layer t=0, last layer t=1
    np.testing.assert_allclose(_w(merged)[0], _w(trio[0])[0], atol=1e-6)
    np.testing.assert_allclose(_w(merged)[3], _w(trio[1])[3], atol=1e-6)


def test_nonfloat_weights_copied_not_averaged():
    def net():
        inp = keras.Input((1,), dtype="int64")
        x = keras.layers.IntegerLookup(vocabulary=[1, 2, 3])(inp)
        x = keras.layers.Embedding(8, 2)(x)
        return keras.Model(inp, keras.layers.Flatten()(x))

    a, b = net(), net()
    kinds = {str(np.asarray(w).dtype) for w in a.get_weights()}
    merged = merge([a, b], "linear")
    for got, wa, wb in zip(_w(merged), _w(a), _w(b), strict=False):
        expected = wa if not np.issubdtype(wa.dtype, np.floating) else (wa + wb) / 2
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert "float32" in kinds


def test_batchnorm_warns_without_data_and_repairs_with_it(rng):
    a, b = mlp(bn=True), mlp(bn=True)
    with pytest.warns(UserWarning, match="repair_data"):
        merged = merge([a, b], "linear")
    bn = [layer for layer in merged.layers if isinstance(layer, keras.layers.BatchNormalization)][0]
    np.testing.assert_allclose(bn.moving_mean.numpy(), a.layers[2].moving_mean.numpy())
    x = rng.normal(size=(300, 5)).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        merged = merge([a, b], "linear", repair_data=x, batch_size=100)
    bn = [layer for layer in merged.layers if isinstance(layer, keras.layers.BatchNormalization)][0]
    hidden = keras.Model(merged.inputs, merged.layers[1].output).predict(x, verbose=0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), hidden.mean(0), rtol=1e-4, atol=1e-5)
    batch_var = np.mean([hidden[i:i + 100].var(0) for i in (0, 100, 200)], axis=0)
    np.testing.assert_allclose(bn.moving_variance.numpy(), batch_var, rtol=1e-3, atol=1e-5)
    assert bn.momentum == 0.99


def test_repair_batchnorm_cumulative_average(rng):
    m = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization()])
    x = rng.normal(4.0, 2.0, size=(256, 3)).astype("float32")
    repair_batchnorm(m, x, batch_size=64)
    np.testing.assert_allclose(m.layers[0].moving_mean.numpy(), x.mean(0), rtol=1e-5)
    with pytest.raises(ValueError, match="no batches"):
        repair_batchnorm(m, x[:0])


def test_uniform_soup_is_mean(trio):
    soup = uniform_soup(trio)
    np.testing.assert_allclose(_w(soup)[0], np.mean([_w(m)[0] for m in trio], 0), rtol=1e-6)


# --- bad input -------------------------------------------------------------------------

def test_architectures_differ_names_layer_and_shapes(trio, tmp_path):
    other = mlp(width=7)
    with pytest.raises(ValueError, match=r"models\[1\] differs .* layer 'dense.*shape \(5, 7\) vs \(5, 6\)"):
        merge([trio[0], other], "linear")
    path = str(tmp_path / "other.keras")
    other.save(path)
    with pytest.raises(ValueError, match=r"other.keras.*shape \(5, 7\) vs \(5, 6\)"):
        merge([trio[0], path], "linear")
    deeper = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6), keras.layers.Dense(4),
                               keras.layers.Dense(4)])
    with pytest.raises(ValueError, match="has 6 weights.*has 4|weights"):
        merge([trio[0], deeper], "linear")


def test_base_of_another_architecture(trio):
    with pytest.raises(ValueError, match=r"differs from base .*shape"):
        merge(trio, "ties", base=mlp(width=3), density=0.5)


@pytest.mark.parametrize("method", ["task_arithmetic", "ties", "dare_linear", "dare_ties",
                                    "model_stock"])
def test_needs_base(trio, method):
    with pytest.raises(ValueError, match="needs base="):
        merge(trio, method)


def test_count_and_parameter_errors(trio):
    with pytest.raises(ValueError, match="model_stock needs at least 2"):
        merge(trio[:1], "model_stock", base=trio[2])
    with pytest.raises(ValueError, match="exactly two models.*got 3"):
        merge(trio, "slerp", t=0.5)
    with pytest.raises(ValueError, match=r"'t' must be in \[0, 1\], got 1.5"):
        merge(trio[:2], "slerp", t=1.5)
    with pytest.raises(ValueError, match="slerp needs parameter t"):
        merge(trio[:2], "slerp")
    for bad in (0.0, 1.2, [0.5, -0.1]):
        with pytest.raises(ValueError, match=r"'density' must be in \(0, 1\]"):
            merge(trio[1:], "ties", base=trio[0], density=bad)
    with pytest.raises(ValueError, match="Did you mean 'density'"):
        merge(trio[1:], "ties", base=trio[0], densty=0.5)
    with pytest.raises(TypeError, match="list of keras.Model"):
        merge(trio[0], "linear")
    with pytest.raises(ValueError, match="Unknown merge method 'lerp'.*'slerp'"):
        merge(trio, "lerp")


def test_lambda_file_refused(tmp_path):
    inp = keras.Input((3,))
    m = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Lambda(lambda t: t * 2)(inp)))
    path = str(tmp_path / "lam.keras")
    m.save(path)
    with pytest.raises(ValueError, match="Lambda layer .*safe_mode=True"):
        merge([path, path], "linear")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        merge([str(tmp_path / "nope.keras"), path], "linear")
