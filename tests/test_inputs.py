"""`kfuse.inputs`: the one input path (names, structure, rows, NaN / inf, strings)."""

import keras
import numpy as np
import pytest

import kfuse
from kfuse import inputs as kinputs
from tests.conftest import requires_tensorflow


def scorer(name, width=4):
    return keras.Sequential([keras.Input((width,), name=name + "_in"), keras.layers.Dense(2, name="out")], name=name)


def two_input_model():
    return kfuse.stack(
        [kfuse.Branch(scorer("a"), name="a", inputs="u", trainable=False),
         kfuse.Branch(scorer("b", 3), name="b", inputs="v", trainable=False)],
        fusion="concat", head=2,
    )  # fmt: skip


def test_named_accepts_dict_array_tuple_and_names_what_is_missing():
    u, v = np.zeros((5, 4)), np.zeros((5, 3))
    assert list(kinputs.named({"v": v, "u": u, "extra": 1}, ["u", "v"])) == ["u", "v"]
    assert kinputs.named((u, v), ["u", "v"])["v"] is v
    assert kinputs.named([u, v], ["u", "v"])["u"] is u
    assert kinputs.named(u, ["u"])["u"] is u
    with pytest.raises(ValueError, match=r"Model 'm' reads inputs \['u', 'v'\]; the data lacks \['v'\]"):
        kinputs.named({"u": u}, ["u", "v"], model_name="m")
    with pytest.raises(ValueError, match="reads several inputs .* one array of shape \\(5, 4\\)"):
        kinputs.named(u, ["u", "v"])
    with pytest.raises(ValueError, match="reads 2 input.* a tuple of 3 arrays"):
        kinputs.named((u, v, v), ["u", "v"])


def test_row_counts_must_agree_and_the_error_lists_them():
    with pytest.raises(ValueError, match=r"different numbers of rows \('u': 5, 'v': 4\)"):
        kinputs.check_rows({"u": np.zeros((5, 4)), "v": np.zeros((4, 3))}, where="fit")
    model = two_input_model()
    with pytest.raises(ValueError, match=r"'u': 6, 'v': 5"):
        model.predict({"u": np.zeros((6, 4)), "v": np.zeros((5, 3))}, verbose=0)
    with pytest.raises(ValueError, match=r"x has 5 rows .* but y has 4"):
        model.fit({"u": np.zeros((5, 4)), "v": np.zeros((5, 3))}, np.zeros(4), verbose=0)


def test_nonfinite_inputs_are_refused_with_the_rows_unless_allowed():
    model = two_input_model()
    u, v = np.zeros((8, 4), "float32"), np.zeros((8, 3), "float32")
    v[[2, 6], 1] = np.nan
    u[5, 0] = np.inf
    data, y = {"u": u, "v": v}, np.zeros(8, "int64")
    with pytest.raises(ValueError, match=r"input 'u' has NaN or infinite values in rows \[5\]"):
        model.fit(data, y, verbose=0)
    with pytest.raises(ValueError, match=r"input 'v' .* rows \[2, 6\].*allow_nonfinite=True"):
        model.predict({"u": np.zeros((8, 4), "float32"), "v": v}, verbose=0)
    with pytest.raises(ValueError, match=r"fit_head: input 'u' .* rows \[5\]"):
        model.fit_head(data, y, verbose=0)
    with pytest.raises(ValueError, match=r"compare\(\): input 'u' .* rows \[5\]"):
        kfuse.compare({"fused": model}, data, y)
    out = model.predict(data, verbose=0, allow_nonfinite=True)  # explicitly allowed
    assert out.shape == (8, 2) and not np.isfinite(out[5]).all() and np.isfinite(out[0]).all()
    many = np.zeros((20, 4), "float32")
    many[3:12] = np.nan
    with pytest.raises(ValueError, match=r"rows \[3, 4, 5, 6, 7\] and 4 more \(9 of 20\)"):
        kinputs.check_finite({"u": many}, where="fit")


def test_stacker_fit_refuses_nonfinite_inputs():
    x = np.zeros((20, 4), "float32")
    x[7, 2] = np.nan
    stacker = kfuse.Stacker([kfuse.Branch(scorer("a"), name="a", inputs="x", trainable=False)], head=2, cv="prefit")
    with pytest.raises(ValueError, match=r"Stacker.fit: input 'x' has NaN .* rows \[7\]"):
        stacker.fit(x, np.arange(20) % 2)


@requires_tensorflow()
def test_first_batch_of_a_dataset_is_checked_and_strings_pass_through():
    import tensorflow as tf

    model = kfuse.stack([kfuse.Branch(scorer("a"), name="a", inputs="x", trainable=False)], fusion=None, head=2)
    x = np.zeros((8, 4), "float32")
    x[1, 1] = np.nan
    data = tf.data.Dataset.from_tensor_slices((x, np.zeros(8, "int64"))).batch(4)
    with pytest.raises(ValueError, match=r"first batch of the tf.data.Dataset\): input 'x' .* batch rows \[1\]"):
        model.fit(data, verbose=0)
    text = np.array(["a b", "c", "nan"], dtype=object)
    arrays, _, _ = kinputs.arrays_and_labels({"t": text, "n": np.ones((3, 1))}, None, ["t", "n"])
    assert arrays["t"] is text  # never cast
    as_tensor = kinputs.as_numpy(tf.constant(["x", "yz"]))
    assert as_tensor.dtype == object and as_tensor.tolist() == ["x", "yz"]  # str, as Keras takes them
    fixed_width = kinputs.as_numpy(np.array(["x", "yz"]))  # numpy '<U2': Keras refuses that dtype
    assert fixed_width.dtype == object and fixed_width.tolist() == ["x", "yz"]
    kinputs.check_finite({"t": np.array(["nan", "inf"])})  # strings are not numbers


def test_compare_matches_dict_inputs_by_model_input_name():
    model = two_input_model()
    u, v, y = np.zeros((6, 4), "float32"), np.ones((6, 3), "float32"), np.arange(6) % 2
    plain = keras.Model(model.input["u"], model.branch_tensor("a"), name="plain")
    report = kfuse.compare({"plain": plain, "fused": model}, {"v": v, "u": u}, y, contributions=False)
    assert set(report.table.index) == {"plain", "fused"}
    with pytest.raises(ValueError, match=r"compare\(\): model 'fused' reads inputs \['u', 'v'\]; the data lacks \['v'\]"):
        kfuse.compare({"fused": model}, {"u": u}, y)
