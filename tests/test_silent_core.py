"""Issue 34, the core: fit checks what predict checks, nothing is truncated or averaged in
silently, and errors name the branch, fold, input, row, line or package at fault."""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import kfuse
from kfuse.datasets import lag_windows
from kfuse.trainers.threads import named_error
from kfuse.tuning.config import load_config


def _x(n=24, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 3)).astype("float32")


def _base(seed, name="x"):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((3,), name=name)
    return keras.Model(inp, keras.layers.Dense(2)(inp))


def _huge():
    """A frozen base whose output overflows to inf on rows with large inputs (finite weights)."""
    inp = keras.Input((3,), name="x")
    dense = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(1e30))
    return keras.Model(inp, dense(inp))


def _nan_weights(seed):
    model = _base(seed)
    kernel = model.layers[1].kernel
    kernel.assign(np.where(np.eye(3, 2) > 0, np.nan, kernel.numpy()).astype("float32"))
    return model


# --- non-finite labels, branches ----------------------------------------------------------

def test_fit_refuses_nan_regression_targets_naming_the_rows():
    model = kfuse.stack([kfuse.Branch(_base(0), name="a")], head=kfuse.layers.heads.Regression())
    before = [w.copy() for w in model.get_weights()]
    y = np.linspace(0, 1, 24).astype("float32")
    y[[3, 7]] = np.nan
    with pytest.raises(ValueError, match=r"\.fit: labels y have NaN or infinite values in rows "
                                         r"\[3, 7\] \(2 of 24\)"):
        model.fit(_x(), y, epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), before, strict=True):  # nothing trained
        np.testing.assert_array_equal(a, b)


def test_fit_refuses_inf_targets_in_a_dataset_first_batch():
    model = kfuse.stack([kfuse.Branch(_base(0), name="a")], head=kfuse.layers.heads.Regression())
    y = np.zeros(24, "float32")
    y[2] = np.inf
    data = tf.data.Dataset.from_tensor_slices((_x(), y)).batch(8)
    with pytest.raises(ValueError, match=r"first batch of the tf.data.Dataset\): labels y have "
                                         r"NaN or infinite values in rows \[2\]"):
        model.fit(data, epochs=1, verbose=0)


def test_stacker_fit_refuses_nan_targets_naming_rows():
    y = np.linspace(0, 1, 24).astype("float32")
    y[11] = np.nan
    stacker = kfuse.Stacker([kfuse.Branch(_base(0), name="a", trainable=False)],
                            head=kfuse.layers.heads.Regression(), cv=2)
    with pytest.raises(ValueError, match=r"Stacker.fit: labels y have NaN or infinite values in "
                                         r"rows \[11\]"):
        stacker.fit(_x(), y)


def test_fit_refuses_a_frozen_branch_with_nan_weights_before_training():
    model = kfuse.stack([kfuse.Branch(_base(0), name="good"),
                         kfuse.Branch(_nan_weights(1), name="broken", trainable=False)],
                        head=kfuse.layers.heads.Regression())
    good = [w.copy() for w in model.branch("good").get_weights()]
    with pytest.raises(ValueError, match=r"frozen branch 'broken' has NaN or infinite values in "
                                         r"its weight 'broken/.*kernel'"):
        model.fit(_x(), np.zeros(24, "float32"), epochs=1, verbose=0)
    for a, b in zip(model.branch("good").get_weights(), good, strict=True):
        np.testing.assert_array_equal(a, b)


def test_stacker_refuses_a_frozen_branch_with_nan_weights():
    stacker = kfuse.Stacker([kfuse.Branch(_base(0), name="ok", trainable=False),
                             kfuse.Branch(_nan_weights(1), name="broken", trainable=False)],
                            head=kfuse.layers.heads.Regression(), cv=2)
    with pytest.raises(ValueError, match=r"Stacker.fit: frozen branch 'broken' has NaN"):
        stacker.fit(_x(), np.zeros(24, "float32"))


def test_fit_names_a_frozen_branch_whose_outputs_overflow_on_some_rows():
    x = _x()
    x[5] = 1e10  # finite input; the frozen branch's output is inf on this row only
    model = kfuse.stack([kfuse.Branch(_base(0), name="a"),
                         kfuse.Branch(_huge(), name="huge", trainable=False)],
                        head=kfuse.layers.heads.Regression())
    with pytest.raises(ValueError, match=r"\.fit \(the loss went NaN\): branch 'huge' outputs NaN "
                                         r"or infinite values on rows \[5\] \(1 of 24\)"):
        model.fit(x, np.zeros(24, "float32"), epochs=1, verbose=0)


def test_fit_head_and_branch_outputs_name_the_nonfinite_branch():
    x = _x()
    x[[4, 9]] = 1e10
    model = kfuse.stack([kfuse.Branch(_base(0), name="a", trainable=False),
                         kfuse.Branch(_huge(), name="huge", trainable=False)],
                        head=kfuse.layers.heads.Regression())
    with pytest.raises(ValueError, match=r"branch 'huge' outputs NaN or infinite values on rows "
                                         r"\[4, 9\]"):
        model.fit_head(x, np.zeros(24, "float32"), epochs=1, verbose=0)
    raw = model.branch_outputs(x, check_finite=False)["huge"]  # still there when asked
    assert np.isinf(raw[[4, 9]]).all() and np.isfinite(np.delete(raw, [4, 9], 0)).all()


# --- integer (token id) inputs ------------------------------------------------------------

def _token_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((4,), name="tokens", dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(10, 3)(inp))
    return kfuse.stack([kfuse.Branch(keras.Model(inp, pooled), name="emb")], head=2)


def test_non_whole_floats_for_a_token_input_are_refused_not_truncated():
    model = _token_model()
    ids = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [1, 1, 2, 2]])
    floats = ids.astype("float32")
    floats[1, 2] = 7.6  # truncation would silently read token 7
    with pytest.raises(ValueError, match=r"input 'tokens' is an integer input \(int32.*non-whole "
                                         r"values in rows \[1\] \(e.g. 7.6\)"):
        model.predict(floats, verbose=0)
    with pytest.raises(ValueError, match=r"\.fit: input 'tokens' is an integer input"):
        model.fit(floats, np.array([0, 1, 0]), epochs=1, verbose=0)
    np.testing.assert_allclose(model.predict(ids.astype("float32"), verbose=0),  # whole: as ids
                               model.predict(ids, verbose=0), rtol=1e-6)


def test_stacker_refuses_non_whole_floats_for_a_token_input():
    inp = keras.Input((4,), name="tokens", dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(10, 3)(inp))
    base = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(pooled))
    x = np.tile([[1.0, 2.0, 3.0, 4.5]], (8, 1)).astype("float32")
    stacker = kfuse.Stacker([kfuse.Branch(base, name="emb", trainable=False)], head=2, cv=2)
    with pytest.raises(ValueError, match=r"Stacker.fit: branch 'emb': input 'tokens' is an integer "
                                         r"input .*\(e.g. 4.5\)"):
        stacker.fit(x, np.arange(8) % 2)


# --- errors in a worker thread name the branch and fold ----------------------------------

@keras.saving.register_keras_serializable("kfuse_test_silent_core")
class _TrainFails(keras.layers.Layer):
    """A user's layer that cannot train (raises when called with training=True)."""

    def call(self, x, training=None):
        if training:
            raise ValueError("this layer cannot train")
        return x


def _fragile(t):
    return keras.layers.Dense(2, activation="softmax")(_TrainFails()(t))


def _plain(t):
    return keras.layers.Dense(2, activation="softmax")(t)


@pytest.mark.parametrize("n_jobs, folds", [(2, r"fold 1"), (1, r"fold 1, fold 2")])
def test_stacker_training_error_names_branch_and_fold(n_jobs, folds):
    x = _x(20)
    stacker = kfuse.Stacker([kfuse.Branch(_plain, name="plain", inputs=["x"]),
                             kfuse.Branch(_fragile, name="fragile", inputs=["x"])],
                            head=2, cv=2, n_jobs=n_jobs)
    with pytest.raises(ValueError, match=rf"(?s)Stacker: training branch 'fragile' \({folds}\) "
                                         r"failed: .*this layer cannot train"):
        stacker.fit(x, (x[:, 0] > 0).astype(int))


def test_named_error_keeps_the_type_or_names_it():
    error = named_error(KeyError("k"), "branch 'b' (fold 1)")
    assert type(error) is RuntimeError and str(error) == "branch 'b' (fold 1): KeyError: 'k'"
    error = named_error(TypeError("bad dtype"), "branch 'b' (the refit on every row)")
    assert type(error) is TypeError and str(error) == "branch 'b' (the refit on every row): bad dtype"


# --- datasets -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name", [
    ({"lags": 2.5}, "lags"), ({"lags": True}, "lags"), ({"lags": "3"}, "lags"),
    ({"lags": 3, "horizon": 1.5}, "horizon"), ({"lags": 3, "start": 4.2}, "start"),
])
def test_lag_windows_refuses_non_whole_steps(kwargs, name):
    with pytest.raises(ValueError, match=rf"lag_windows: {name} must be a whole number of time "
                                         r"steps; received"):
        lag_windows(np.arange(12.0), **kwargs)


def test_lag_windows_whole_float_is_the_int():
    for got, want in zip(lag_windows(np.arange(12.0), 3.0, horizon=2.0),
                         lag_windows(np.arange(12.0), 3, horizon=2), strict=True):
        np.testing.assert_array_equal(got, want)


def test_from_tfds_without_its_package_says_how_to_install(tmp_path, monkeypatch):
    from kfuse.datasets import from_tfds

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # as if not installed
    with pytest.raises(ModuleNotFoundError, match=r"pip install tensorflow-datasets"):
        from_tfds("toy", str(tmp_path), inputs={"x": "x"})


# --- tune configs keep line and column -----------------------------------------------------

def test_tune_config_unknown_key_names_its_line(tmp_path):
    path = tmp_path / "tune.yaml"
    path.write_text("branches: [a.keras]\ndata: mnist1d\nfit: {epochs: 2}\n\ntunner:\n  type: random\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['tunner'\] at line 5, column 1.*"
                                         r"did you mean 'tuner'"):
        load_config(str(path))


def test_tune_config_bad_value_names_its_line(tmp_path):
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(tmp_path / "a.keras")
    path = tmp_path / "tune.yaml"
    path.write_text(f"branches: [{tmp_path / 'a.keras'}]\ndata: mnist1d\n"
                    "fit:\n  batch_size: 8\n  epochs: one\n")
    with pytest.raises(ValueError, match=r"tune\.yaml, line 5, column 11: fit\.epochs must be"):
        load_config(str(path))
