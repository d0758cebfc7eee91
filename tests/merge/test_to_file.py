"""merge_to_file: .keras files merged into a .keras file, equal to merge(...).save(...)."""

import os
import warnings
import zipfile

import keras
import numpy as np
import pytest

from kfuse.merge import merge, merge_to_file


def mlp(bn=False):
    inp = keras.Input((5,))
    x = keras.layers.Dense(6, activation="relu")(inp)
    if bn:
        x = keras.layers.BatchNormalization()(x)
    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    return keras.Model(inp, inner(x))


def _saved(models, folder, prefix):
    paths = []
    for i, m in enumerate(models):
        m.compile("adam", "mse")  # an optimizer in the file: not carried into the output
        m.fit(np.ones((4, 5)), np.ones((4, 4)), verbose=0)
        paths.append(str(folder / f"{prefix}{i}.keras"))
        m.save(paths[-1])
    return paths


@pytest.mark.parametrize("method,params", [
    ("linear", {"normalize": True}), ("ties", {"density": 0.5}),
    ("dare_ties", {"density": 0.7, "seed": 3}), ("slerp", {"t": 0.3}),
    ("task_arithmetic", {"lambda_": 0.5}),
])
def test_equals_merge_then_save(tmp_path, method, params):
    paths = _saved([mlp(bn=True) for _ in range(4)], tmp_path, "m")
    base = paths[0] if method in ("ties", "dare_ties", "task_arithmetic") else None
    models = paths[1:3] if method == "slerp" else paths[1:]
    out = str(tmp_path / "out" / "merged.keras")
    with pytest.warns(UserWarning, match="BatchNormalization"):
        written = merge_to_file(models, method, out, base=base, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = merge(models, method, base=base, **params)
    got = keras.saving.load_model(written, safe_mode=True)
    assert written == out and sorted(os.listdir(tmp_path / "out")) == ["merged.keras"]
    assert [w.path for w in got.weights] == [w.path for w in expected.weights]
    for a, b in zip(got.get_weights(), expected.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    x = np.random.default_rng(0).normal(size=(7, 5)).astype("float32")
    np.testing.assert_allclose(got.predict(x, verbose=0), expected.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_repair_data_recomputes_batchnorm(tmp_path):
    paths = _saved([mlp(bn=True) for _ in range(2)], tmp_path, "m")
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(64, 5)).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "not recomputed" warning
        out = merge_to_file(paths, "linear", str(tmp_path / "r.keras"), repair_data=x)
    expected = merge(paths, "linear", repair_data=x)
    got = keras.saving.load_model(out, safe_mode=True)
    for a, b in zip(got.get_weights(), expected.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    bn = next(layer for layer in got.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert not np.allclose(bn.moving_mean.numpy(), 0.0)  # recomputed, not the initial zeros


def test_string_lookup_assets_carried(tmp_path):
    def text_model():
        inp = keras.Input((1,), dtype="string")
        lookup = keras.layers.StringLookup()
        lookup.adapt(["a", "b", "c"])  # an adapted vocabulary is saved as an asset
        ids = lookup(inp)
        x = keras.layers.Embedding(5, 3)(ids)
        return keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(x)))

    models = [text_model() for _ in range(2)]
    paths = [str(tmp_path / f"t{i}.keras") for i in range(2)]
    for m, p in zip(models, paths, strict=True):
        m.save(p)
    out = merge_to_file(paths, "linear", str(tmp_path / "t.keras"))
    with zipfile.ZipFile(paths[0]) as a, zipfile.ZipFile(out) as b:
        assets = [n for n in a.namelist() if n.startswith("assets/")]
        assert assets and all(n in b.namelist() for n in assets)
    got = keras.saving.load_model(out, safe_mode=True)
    x = keras.ops.convert_to_tensor([["a"], ["c"], ["zzz"]], dtype="string")
    expected = keras.ops.convert_to_numpy(got(x))
    # merge() keeps the adapted vocabulary too: from a model (clone_model drops it) and a file
    for inputs in (models, paths):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(merge(inputs, "linear")(x)),
                                   expected, rtol=1e-5)


def test_nothing_written_on_bad_input(tmp_path):
    paths = _saved([mlp(), mlp()], tmp_path, "m")
    other = str(tmp_path / "other.keras")
    keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)]).save(other)
    out = str(tmp_path / "out.keras")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ValueError, match="differs from models\\[0\\]"):
        merge_to_file([paths[0], other], "linear", out)
    with pytest.raises(TypeError, match="in-memory keras.Model"):
        merge_to_file([paths[0], mlp()], "linear", out)
    with pytest.raises(ValueError, match="must end in .keras"):
        merge_to_file(paths, "linear", str(tmp_path / "out.h5"))
    with pytest.raises(ValueError, match="density"):
        merge_to_file(paths, "ties", out, base=paths[0], density=1.5)
    assert sorted(os.listdir(tmp_path)) == before  # no output, no temporary left behind
