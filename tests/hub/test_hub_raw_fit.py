"""A fused model over a KerasHub Task with a preprocessor takes the Task's raw inputs:
`fit`, `predict`, `predict_proba` and `evaluate` tokenize strings in the input pipeline
(as KerasHub's `PipelineModel` does), under the name the SavedModel serves
(`<branch>_text`)."""

import keras
import numpy as np
import pytest

import kfuse
from tests.hub.families import STRINGS, _bert, backbone_families, bert_classifier, images

keras_hub = pytest.importorskip("keras_hub")
Y = np.array([0, 1, 0])


def _tokens(task):
    return {k: np.asarray(v) for k, v in task.preprocessor(STRINGS).items()}


@pytest.mark.slow
def test_fit_and_predict_on_a_list_of_strings_equal_the_tokenized_inputs():
    import tensorflow as tf

    task = bert_classifier()
    model = kfuse.stack([kfuse.Branch(task, name="bert")], head=2)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    before = model.get_layer("bert").get_weights()[0].copy()
    model.fit(STRINGS, Y, epochs=1, batch_size=2, verbose=0)
    assert np.abs(model.get_layer("bert").get_weights()[0] - before).max() > 0  # it trained
    want = model.predict(_tokens(task), verbose=0)
    np.testing.assert_allclose(model.predict(STRINGS, verbose=0), want, atol=1e-6)
    np.testing.assert_allclose(model.predict({"bert_text": np.array(STRINGS)}, verbose=0), want, atol=1e-6)
    proba = model.predict_proba(STRINGS, verbose=0)
    np.testing.assert_allclose(proba, keras.ops.convert_to_numpy(keras.ops.softmax(want)), atol=1e-6)
    loss = model.evaluate({"bert_text": STRINGS}, Y, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(model.evaluate(_tokens(task), Y, verbose=0, return_dict=True)["loss"], abs=1e-6)
    ds = tf.data.Dataset.from_tensor_slices(({"bert_text": STRINGS}, Y)).batch(2)
    np.testing.assert_allclose(model.predict(ds.map(lambda x, y: x), verbose=0), want, atol=1e-6)
    model.fit(ds, epochs=1, verbose=0, validation_data=ds)  # the preprocessor mapped over it


def test_fit_head_on_the_branch_cache_takes_the_raw_strings():
    task = bert_classifier()
    start, trained = None, {}
    for name, x in (("raw", {"bert_text": STRINGS}), ("tokens", _tokens(task))):
        model = kfuse.stack([kfuse.Branch(task, name="bert", trainable=False)], head=2)
        start = start or model.top.get_weights()
        model.top.set_weights(start)
        keras.utils.set_random_seed(0)
        model.fit_head(x, Y, epochs=2, verbose=0)
        trained[name] = model.top.get_weights()
    assert max(np.abs(a - b).max() for a, b in zip(start, trained["raw"], strict=True)) > 0
    for a, b in zip(trained["raw"], trained["tokens"], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.slow
def test_fused_text_and_image_model_fits_on_strings_and_serves_them(tmp_path):
    import tensorflow as tf

    task = bert_classifier()
    vit = backbone_families()["vit"]()[0]
    model = kfuse.stack(
        [kfuse.Branch(task, name="bert"),
         kfuse.Branch(vit, name="vit", inputs="img", trainable=False, pool="first")],
        head=2,
    )  # fmt: skip
    model.compile("adam", "sparse_categorical_crossentropy")
    img = images()
    model.fit({"bert_text": STRINGS, "img": img}, Y, epochs=1, verbose=0)
    want = model.predict({**_tokens(task), "img": img}, verbose=0)
    got = model.predict({"bert_text": STRINGS, "img": img}, verbose=0)
    np.testing.assert_allclose(got, want, atol=1e-6)
    path = kfuse.export.export_saved_model(model, tmp_path / "served")
    serve = tf.saved_model.load(path).signatures["serving_default"]
    served = serve(bert_text=tf.constant(STRINGS), img=tf.constant(img))["logits"].numpy()
    np.testing.assert_allclose(served, got, atol=1e-5)


def test_stacker_and_compare_take_the_raw_strings():
    task = bert_classifier()
    y, strings = np.tile(Y, 2), STRINGS * 2
    tokens = {k: np.asarray(v) for k, v in task.preprocessor(strings).items()}
    branch = kfuse.Branch(task, name="bert", trainable=False, tap="classifier_dropout")
    stacker = kfuse.Stacker([branch], head=2, cv=2, stack_method="features").fit(strings, y)
    want = stacker.predict_proba(tokens)
    np.testing.assert_allclose(stacker.predict_proba({"bert_text": strings}), want, atol=1e-6)
    assert stacker.score(strings, y) == stacker.score(tokens, y)
    table = kfuse.compare({"st": stacker}, {"bert_text": strings}, y).table
    assert table.loc["st", "log_loss"] == pytest.approx(
        kfuse.compare({"st": stacker}, tokens, y).table.loc["st", "log_loss"], abs=1e-6
    )


def test_raw_strings_for_a_task_without_its_preprocessor_name_the_branch():
    task = keras_hub.models.BertTextClassifier(_bert(), num_classes=2, preprocessor=None)
    model = kfuse.stack([kfuse.Branch(task, name="bert")], head=2, warm_start=False)
    model.compile("adam", "sparse_categorical_crossentropy")
    expected = r"branch 'bert' is a KerasHub BertTextClassifier without a preprocessor"
    with pytest.raises(ValueError, match=expected):
        model.fit(STRINGS, Y, verbose=0)
    with pytest.raises(ValueError, match=expected):
        model.predict({"bert_text": STRINGS}, verbose=0)
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(({"bert_text": STRINGS}, Y)).batch(2)
    with pytest.raises(ValueError, match=expected):
        model.fit(dataset, verbose=0)
    strings = np.array(STRINGS, object)
    with pytest.raises(ValueError, match=r"Tokenize them first"):
        model.predict({"token_ids": strings, "segment_ids": strings, "padding_mask": strings})


def test_a_misspelt_raw_text_key_suggests_the_branch_text_name():
    model = kfuse.stack([kfuse.Branch(bert_classifier(), name="bert")], head=2)
    with pytest.raises(ValueError, match=r"did you mean 'bert_text' for 'bert_txt'"):
        model.predict({"bert_txt": STRINGS}, verbose=0)
