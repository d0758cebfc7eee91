"""A fused text + image model whose text branch is a KerasHub Task: its SavedModel takes
raw strings (the Task's tokenizer inside the serving signature), served by a fresh process
that imports only TensorFlow and tensorflow-text."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

import kfuse
from tests.hub.families import STRINGS, backbone_families, bert_classifier, images

pytest.importorskip("tensorflow_text")

SERVE = """
import json, sys
import numpy as np, tensorflow as tf, tensorflow_text  # noqa: F401 (the tokenizer ops)
path, strings, image_file = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
signature = tf.saved_model.load(path).signatures["serving_default"]
out = signature(bert_text=tf.constant(strings), img=tf.constant(np.load(image_file)))
print(json.dumps({"logits": out["logits"].numpy().tolist(),
                  "hub": "keras_hub" in sys.modules}))
"""


@pytest.mark.slow
def test_saved_model_serves_raw_strings_in_a_tensorflow_only_process(tmp_path):
    task = bert_classifier()
    vit = backbone_families()["vit"]()[0]
    model = kfuse.stack(
        [kfuse.Branch(task, name="bert", trainable=False),
         kfuse.Branch(vit, name="vit", inputs="img", trainable=False, pool="first")],
        head=2,
    )  # fmt: skip
    model.save(tmp_path / "fused.keras")  # the tokenizer's vocabulary travels as an asset
    model = keras.saving.load_model(tmp_path / "fused.keras")
    tokens = {k: np.asarray(v) for k, v in task.preprocessor(STRINGS).items()}
    x = {**{k: tokens[k] for k in ("token_ids", "segment_ids", "padding_mask")}, "img": images()}
    want = model.predict(x, verbose=0)
    path = kfuse.export.export_saved_model(model, tmp_path / "served")
    inputs = kfuse.export.inspect(tmp_path / "served")["1"]["serving_default"]["inputs"]
    assert sorted(inputs) == ["bert_text", "img"]
    np.save(tmp_path / "img.npy", x["img"])
    done = subprocess.run(
        [sys.executable, "-c", SERVE, path, json.dumps(STRINGS), str(tmp_path / "img.npy")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["hub"] is False
    np.testing.assert_allclose(np.array(served["logits"]), want, atol=1e-5)


def test_raw_text_false_keeps_the_token_inputs(tmp_path):
    model = kfuse.stack([kfuse.Branch(bert_classifier(), name="bert", trainable=False)], head=2)
    kfuse.export.export_saved_model(model, tmp_path / "tok", raw_text=False)
    inputs = kfuse.export.inspect(tmp_path / "tok")["1"]["serving_default"]["inputs"]
    assert sorted(inputs) == ["padding_mask", "segment_ids", "token_ids"]


def test_two_text_tasks_reading_one_input_are_refused(tmp_path):
    model = kfuse.stack(
        [kfuse.Branch(bert_classifier(), name="a"), kfuse.Branch(bert_classifier(), name="b")],
        head=2,
    )
    with pytest.raises(
        ValueError, match=r"Branches 'a' and 'b' both read the model input 'padding_mask'"
    ):
        kfuse.export.export_saved_model(model, tmp_path / "x")
