"""Inputs in every form users hold (issue 33 item 2): pandas DataFrames and Series, strings
as numpy str / object arrays, lists and tf.constant, through bases built the Keras way
(`Input((1,), dtype="string")` -> TextVectorization -> Dense)."""

import keras
import numpy as np
import pandas as pd
import pytest

import kfuse
from tests.conftest import requires_tensorflow

TEXTS = np.array(["good movie", "bad film", "great plot", "awful acting", "nice story", "terrible end"] * 4)
LABELS = np.array([1, 0, 1, 0, 1, 0] * 4)


def text_classifier(shape, seed=1):
    """A text classifier the way Keras's examples build it, trained on string tensors."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    vectorize = keras.layers.TextVectorization(max_tokens=40, output_mode="multi_hot")
    vectorize.adapt(TEXTS)
    inputs = keras.Input(shape, dtype="string", name="text")
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(vectorize(inputs)), name=f"text{len(shape)}")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(tf.constant(TEXTS if shape == () else TEXTS[:, None]), LABELS, epochs=2, verbose=0)
    return model


def string_forms():
    import tensorflow as tf

    return {"str": TEXTS, "object": TEXTS.astype(object), "list": [str(t) for t in TEXTS],
            "series": pd.Series(TEXTS), "frame": pd.DataFrame({"text": TEXTS}),
            "tf.constant": tf.constant(TEXTS), "bytes": TEXTS.astype(bytes)}  # fmt: skip


@pytest.mark.slow
@requires_tensorflow()
@pytest.mark.parametrize("shape", [(1,), ()])
def test_a_keras_text_classifier_takes_strings_in_every_form(shape, tmp_path):
    base = text_classifier(shape)
    import tensorflow as tf

    expected = base.predict(tf.constant(TEXTS if shape == () else TEXTS[:, None]), verbose=0)
    path = str(tmp_path / "text.keras")
    base.save(path)
    for source in (base, path):  # from memory and from its .keras file
        model = kfuse.stack([kfuse.Branch(source, name="t", trainable=False)], fusion=None, head=2)
        assert model.kfuse_info["warm_start"] is True  # (None, 1, 2) squeezed, softmax read
        for form, x in string_forms().items() if source is base else [("str", TEXTS)]:
            proba = model.predict_proba(x)
            assert proba.shape == (len(TEXTS), 2), form
            np.testing.assert_array_equal(proba.argmax(-1), expected.argmax(-1), err_msg=form)
            assert model.branch_outputs(x)["t"].shape == (len(TEXTS), 2)
        model.fit(string_forms()["list"], LABELS, epochs=1, verbose=0)
        loss = model.evaluate(pd.Series(TEXTS), pd.Series(LABELS), verbose=0)
        assert np.isfinite(loss).all()
    saved = str(tmp_path / "fused.keras")
    model.save(saved)
    again = keras.saving.load_model(saved)
    np.testing.assert_allclose(again.predict(TEXTS, verbose=0), model.predict(TEXTS.astype(object), verbose=0), atol=1e-6)
    from kfuse.export import export_saved_model

    served = tf.saved_model.load(export_saved_model(model, str(tmp_path / "served"))).signatures["serving_default"]
    logits = served(text=tf.constant(TEXTS if shape == () else TEXTS[:, None]))["logits"].numpy()
    np.testing.assert_allclose(logits, model.predict(TEXTS, verbose=0), atol=1e-5)


@pytest.mark.slow
@requires_tensorflow()
def test_the_stacker_trains_text_bases_on_a_string_array():
    bases = [kfuse.Branch(text_classifier((1,), seed), name=f"t{seed}", fit={"epochs": 1}) for seed in (1, 2)]
    stacker = kfuse.Stacker(bases, head=2, cv=2, verbose=0, meta_fit={"epochs": 1})
    stacker.fit(TEXTS, LABELS)
    proba = stacker.predict_proba(list(TEXTS))
    assert proba.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(proba, stacker.predict_proba(pd.Series(TEXTS)), atol=1e-6)


def test_dataframes_one_input_whole_and_several_inputs_by_name():
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    table = pd.DataFrame(rng.normal(size=(20, 4)).astype("float32"), columns=list("abcd"))
    base = keras.Sequential([keras.Input((4,), name="table"), keras.layers.Dense(3, activation="softmax")], name="m")
    model = kfuse.stack([kfuse.Branch(base, name="m", trainable=False)], fusion=None, head=3)
    np.testing.assert_allclose(model.predict(table, verbose=0), model.predict(table.to_numpy(), verbose=0), atol=1e-6)
    model.fit(table, pd.Series(rng.integers(0, 3, 20)), epochs=1, verbose=0)
    # several inputs: one column per input name
    left = keras.Sequential([keras.Input((1,), name="age"), keras.layers.Dense(2, activation="softmax")], name="l")
    right = keras.Sequential([keras.Input((1,), name="income"), keras.layers.Dense(2, activation="softmax")], name="r")
    two = kfuse.stack([kfuse.Branch(m, name=m.name, trainable=False) for m in (left, right)], fusion="average", head=2)
    frame = pd.DataFrame({"income": rng.normal(size=8), "age": rng.normal(size=8), "other": 0.0})
    by_name = {"age": frame["age"].to_numpy()[:, None], "income": frame["income"].to_numpy()[:, None]}
    np.testing.assert_allclose(two.predict(frame[["age", "income"]], verbose=0), two.predict(by_name, verbose=0), atol=1e-6)
    with pytest.raises(ValueError, match=r"reads several inputs \['age', 'income'\].*lacking \['age'\].*dict"):
        two.predict(frame.rename(columns={"age": "years"}), verbose=0)


@pytest.mark.slow
@requires_tensorflow()
def test_an_ensemble_and_compare_take_a_list_of_str():
    from kfuse.ensemble import BaggingClassifier

    bag = BaggingClassifier(lambda: text_classifier((1,), 1), n_estimators=2, fit_params={"epochs": 1},
                            random_state=0).fit(list(TEXTS), LABELS)  # fmt: skip
    proba = bag.predict_proba(pd.Series(TEXTS))
    assert proba.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(proba.sum(-1), 1.0, atol=1e-5)
    report = kfuse.compare({"bag": bag.model_, "base": text_classifier((1,), 2)}, list(TEXTS), LABELS)
    expected = bag.predict_proba(TEXTS.astype(object)).argmax(-1)
    np.testing.assert_array_equal(np.asarray(report.predictions["bag"].labels), expected)
