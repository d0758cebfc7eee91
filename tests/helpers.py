"""Shared checks for kfuse layers and models, the keras-hub way: one call, many checks."""

import os
import tempfile

import keras
import numpy as np


def random_branches(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype("float32") for s in shapes]


def run_fusion_layer_test(
    layer_cls,
    init_kwargs,
    input_shapes,
    expected_output_shape,
    expected_num_trainable_weights,
    expected_num_non_trainable_weights=0,
    presence=None,
    run_training_check=None,
    call_kwargs=None,
):
    """Check a fusion layer: output shape, weights, config round-trip, `.keras`
    round-trip inside a model with equal outputs, and one training step that changes the
    trainable weights. Returns the layer's output on random data.

    `input_shapes` include the batch axis, e.g. [(4, 8), (4, 3)].
    """
    call_kwargs = dict(call_kwargs or {})
    data = random_branches(input_shapes)
    layer = layer_cls(**init_kwargs)

    # eager call and shapes
    kwargs = dict(call_kwargs)
    if presence is not None:
        kwargs["presence"] = presence
    out = layer(data, **kwargs)
    out = keras.ops.convert_to_numpy(out[0] if isinstance(out, (list, tuple)) else out)
    assert tuple(out.shape) == tuple(expected_output_shape), (out.shape, expected_output_shape)
    assert np.all(np.isfinite(out))
    static = layer.compute_output_shape([tuple(s) for s in input_shapes])
    static = static[0] if isinstance(static, list) else static
    assert tuple(static) == tuple(expected_output_shape), (static, expected_output_shape)
    assert len(layer.trainable_weights) == expected_num_trainable_weights, [
        w.path for w in layer.trainable_weights
    ]
    assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights

    # config round-trip: same config, same class
    config = layer.get_config()
    revived = layer_cls.from_config(config)
    assert revived.get_config() == config
    for key in init_kwargs:
        assert key in config, f"{key} missing from get_config()"

    # a symbolic call gives the static shape, batch axis unknown
    symbolic = layer_cls(**init_kwargs)([keras.Input(shape=s[1:]) for s in input_shapes], **call_kwargs)
    symbolic = symbolic[0] if isinstance(symbolic, (list, tuple)) else symbolic
    assert tuple(symbolic.shape) == (None, *tuple(expected_output_shape)[1:]), symbolic.shape

    check_mixed_precision(layer_cls, init_kwargs, data, expected_output_shape, call_kwargs)

    # inside a model: .keras round-trip gives equal outputs
    inputs = [keras.Input(shape=s[1:]) for s in input_shapes]
    fused = layer_cls(**init_kwargs)(inputs, **call_kwargs)
    fused = fused[0] if isinstance(fused, (list, tuple)) else fused
    flat = keras.layers.Flatten()(fused) if len(fused.shape) > 2 else fused
    target = keras.layers.Dense(1, name="target")(flat)
    model = keras.Model(inputs, target)
    before = model.predict(data, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "layer.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    after = loaded.predict(data, verbose=0)
    np.testing.assert_allclose(before, after, atol=1e-6)

    # one training step changes every trainable weight of the fusion layer
    fusion = model.layers[len(input_shapes)]
    if run_training_check is None:
        run_training_check = expected_num_trainable_weights > 0
    if run_training_check:
        start = [keras.ops.convert_to_numpy(w).copy() for w in fusion.trainable_weights]
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit(data, np.ones((input_shapes[0][0], 1), "float32"), epochs=1, verbose=0)
        end = [keras.ops.convert_to_numpy(w) for w in fusion.trainable_weights]
        moved = [not np.allclose(a, b) for a, b in zip(start, end, strict=True)]
        assert any(moved), "no trainable weight of the fusion layer moved"
    return out


def check_mixed_precision(layer_cls, init_kwargs, data, expected_output_shape, call_kwargs=None):
    """Under a `mixed_float16` policy the layer computes in float16, keeps float32 weights."""
    layer = layer_cls(**init_kwargs, dtype="mixed_float16")
    out = layer([keras.ops.cast(d, "float16") for d in data], **dict(call_kwargs or {}))
    out = out[0] if isinstance(out, (list, tuple)) else out
    assert keras.backend.standardize_dtype(out.dtype) == "float16", (layer_cls.__name__, out.dtype)
    assert tuple(out.shape) == tuple(expected_output_shape)
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in layer.weights)
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(out, "float32"))))


def assert_round_trip(model, x, tmp_path, atol=1e-6):
    """Save `model` as .keras, load it, and check predictions are equal."""
    path = os.path.join(str(tmp_path), "model.keras")
    before = model.predict(x, verbose=0)
    model.save(path)
    loaded = keras.saving.load_model(path)
    after = loaded.predict(x, verbose=0)
    np.testing.assert_allclose(before, after, atol=atol)
    return loaded


def dropout_net(width, hidden=8, rate=0.4, classes=3):
    """A small compiled classifier with BatchNormalization and Dropout (seed state the
    engine's workers must carry): Dense(relu) - BatchNorm - Dropout - Dense logits, Adam 1e-2."""
    inp = keras.Input((width,))
    h = keras.layers.Dropout(rate)(keras.layers.BatchNormalization()(keras.layers.Dense(hidden, activation="relu")(inp)))
    model = keras.Model(inp, keras.layers.Dense(classes)(h))
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
    return model
