"""MiniRocket: aeon's features given aeon's biases, biases from quantiles, state that saves."""

import keras
import numpy as np
import pytest

from kfuse.branches.state import clone_with_state, readapt_preprocessing
from kfuse.features import MiniRocket
from kfuse.features.minirocket import KERNEL_INDICES, quantiles


def _integer_series(n, channels, length, seed=0):
    # integer values keep every convolution exact in float32, so no comparison with a
    # bias can differ by rounding between two implementations
    return np.random.default_rng(seed).integers(-3, 4, size=(n, channels, length)).astype("float32")


@pytest.mark.parametrize("channels", [1, 3])
def test_equals_aeon_minirocket_given_its_biases(channels):
    aeon_minirocket = pytest.importorskip(
        "aeon.transformations.collection.convolution_based"
    ).MiniRocket
    x = _integer_series(12, channels, 60)  # aeon's layout: (n, channels, steps)
    reference = aeon_minirocket(n_kernels=1000, random_state=0).fit(x)
    counts, channel_indices, dilations, per_dilation, biases = reference.parameters
    layer = MiniRocket(num_features=1000, seed=0)
    series = np.transpose(x, (0, 2, 1))
    layer.adapt(series)
    assert layer.dilations == dilations.tolist()
    assert layer.features_per_dilation == per_dilation.tolist()
    layer.biases.assign(biases)
    if channels > 1:  # aeon's channel subsets, one per kernel / dilation pair
        mask, start = np.zeros(layer.channel_mask.shape, "float32"), 0
        for pair, count in enumerate(counts):
            mask[pair, channel_indices[start:start + count]] = 1.0
            start += count
        layer.channel_mask.assign(mask)
    ours = np.asarray(layer(series))
    assert ours.shape == (12, 924)
    np.testing.assert_allclose(ours, reference.transform(x), atol=1e-6)


def _numpy_convolution(series, kernel, dilation):
    """Kernel `kernel` at `dilation` over a zero-padded 1-D series, same length out."""
    weights = np.full(9, -1.0)
    weights[list(KERNEL_INDICES[kernel])] = 2.0
    padding = 4 * dilation
    padded = np.concatenate([np.zeros(padding), series, np.zeros(padding)])
    return np.array([
        sum(weights[i] * padded[t + i * dilation] for i in range(9)) for t in range(len(series))
    ])


def test_biases_are_the_quantiles_of_a_training_series_convolution():
    one = np.random.default_rng(1).normal(size=40)
    x = np.repeat(one[None, :, None], 5, axis=0).astype("float32")  # every draw: this series
    layer = MiniRocket(num_features=84 * 4, seed=3)
    layer.adapt(x)
    biases, q, start = np.asarray(layer.biases), quantiles(layer.output_width), 0
    for dilation, count in zip(layer.dilations, layer.features_per_dilation, strict=True):
        for kernel in range(84):
            conv = _numpy_convolution(one, kernel, dilation)
            np.testing.assert_allclose(biases[start:start + count],
                                       np.quantile(conv, q[start:start + count]), atol=1e-4)
            start += count
    # the features are the proportions of positive values, over the padded series or
    # the valid part, alternating: checked on the first kernel / dilation by hand
    conv = _numpy_convolution(one, 0, layer.dilations[0])
    expected = np.mean(conv[:, None] > biases[None, :layer.features_per_dilation[0]], axis=0)
    np.testing.assert_allclose(np.asarray(layer(x[:1]))[0, :layer.features_per_dilation[0]],
                               expected, atol=1e-6)


def _model(x, seed=0):
    inputs = keras.Input(x.shape[1:])
    rocket = MiniRocket(num_features=420, seed=seed)
    rocket.adapt(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(rocket(inputs)))


def test_saves_reloads_and_clones_with_its_biases(tmp_path):
    x = np.random.default_rng(0).normal(size=(16, 30, 2)).astype("float32")
    model = _model(x)
    path = tmp_path / "rocket.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected, atol=1e-6)
    np.testing.assert_allclose(clone_with_state(model).predict(x, verbose=0), expected, atol=1e-6)
    rocket = next(layer for layer in reloaded.layers if isinstance(layer, MiniRocket))
    assert rocket.get_config()["num_features"] == 420 and not rocket.trainable_weights


def test_readapt_draws_the_biases_from_the_given_rows_only():
    x = np.random.default_rng(0).normal(size=(16, 30, 1)).astype("float32")
    model = _model(x)
    rocket = model.layers[1]
    # the kernels sum to zero, so a shift cancels; a scale shows in the biases
    assert readapt_preprocessing(model, 100.0 * x[:4]) == [rocket.name]
    on_those_rows = MiniRocket(num_features=420, seed=0)
    on_those_rows.adapt(x[:4])
    np.testing.assert_allclose(np.asarray(rocket.biases), 100.0 * np.asarray(on_those_rows.biases),
                               rtol=1e-4, atol=1e-3)


def test_not_adapted_is_an_error_eagerly_and_nan_when_traced():
    x = np.zeros((2, 20, 1), "float32")
    layer = MiniRocket(num_features=84)
    with pytest.raises(ValueError, match="not adapted: call `.adapt"):
        layer(x)
    model = keras.Sequential([keras.Input((20, 1)), MiniRocket(num_features=84)])
    assert np.isnan(model.predict(x, verbose=0)).all()


@pytest.mark.parametrize("data, message", [
    (np.zeros((4, 30), "float32"), r"2-D data \(4, 30\).*x\[\.\.\., None\]"),
    (np.zeros((4, 8, 1), "float32"), "shorter than its kernels"),
    (np.where(np.arange(60).reshape(2, 30, 1) == 45, np.nan, 0.0), "non-finite value in series 1"),
])
def test_bad_series_name_what_is_wrong(data, message):
    with pytest.raises(ValueError, match=message):
        MiniRocket(num_features=84, name="rocket").adapt(data)


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="integer >= 84.*received 50"):
        MiniRocket(num_features=50)
    with pytest.raises(ValueError, match="positive integer; received 0"):
        MiniRocket(max_dilations_per_kernel=0)


def test_standardization_equals_scikit_learn_and_leaves_constant_features_finite(tmp_path):
    from sklearn.preprocessing import StandardScaler

    from kfuse.features import Standardization

    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(3, 2, size=(30, 3)), np.ones(30), np.zeros(30)].astype("float32")
    test = rng.normal(size=(5, 5)).astype("float32")  # the constant features vary here
    layer = Standardization()
    layer.adapt(x)
    expected = StandardScaler().fit(x).transform(test)
    np.testing.assert_allclose(np.asarray(layer(test)), expected, rtol=1e-4, atol=1e-4)
    assert np.abs(np.asarray(layer(test))).max() < 100  # Normalization gives ~1e7 here
    model = keras.Sequential([keras.Input((5,)), layer])
    model.save(tmp_path / "s.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "s.keras").predict(test, verbose=0),
                               expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="non-finite value in row 2"):
        Standardization().adapt(np.where(np.arange(10).reshape(5, 2) == 5, np.nan, 0.0))
