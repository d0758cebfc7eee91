"""Raw string inputs end to end: `keras.Input(dtype="string")` branches in `stack`, the
`Stacker` (folds, cache, resume), `compare`, the export's string signature and
`rest_payload`, served by a fresh TensorFlow-only process."""

import glob
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.model_selection import KFold

import kfuse
from tests.branches.test_preprocessing_branches import TEXT, make_base
from tests.conftest import requires_tensorflow

pytestmark = requires_tensorflow()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVE_CHECK = os.path.join(ROOT, "tests", "workers", "serve_check.py")
LABELS = np.array([int("cat" in t or "dog" in t) for t in TEXT])


def text_classifier(mode="multi_hot"):
    base, _ = make_base(f"text_{mode}")
    return keras.Model(
        base.input, keras.layers.Dense(2, activation="softmax", name="p")(base.output)
    )


def test_stacker_on_strings_folds_cache_and_resume(tmp_path):
    trained = kfuse.Branch(
        text_classifier(), name="t", inputs="x", fit={"epochs": 3, "learning_rate": 0.05}
    )
    frozen = kfuse.Branch(text_classifier("count"), name="f", inputs="x", trainable=False)
    kwargs = dict(
        head=2, cv=KFold(2), verbose=0, meta_fit={"epochs": 2}, work_dir=str(tmp_path / "run")
    )
    first = kfuse.Stacker([trained, frozen], **kwargs).fit(TEXT, LABELS)  # numpy object array
    expected = first.predict_proba(TEXT)
    assert expected.shape == (len(TEXT), 2) and np.all(np.isfinite(expected))
    assert set(first.features_) == {"t", "f"}  # the frozen text branch came from the cache
    saved = {f: os.path.getmtime(f) for f in glob.glob(str(tmp_path / "run" / "fold_*" / "*"))}
    assert saved
    # a tf.constant of the same strings: the same data, so the run resumes from its folds
    again = kfuse.Stacker([trained, frozen], **kwargs).fit(tf.constant(TEXT.astype(str)), LABELS)
    assert {f: os.path.getmtime(f) for f in saved} == saved
    np.testing.assert_allclose(again.predict_proba(TEXT), expected, atol=1e-5)


def test_compare_a_text_stack_with_its_base():
    base = text_classifier()
    model = kfuse.stack([kfuse.Branch(base, name="t", inputs="x", trainable=False)], head=2)
    report = kfuse.compare({"text": base, "fused": model}, {"x": TEXT}, LABELS, n_boot=20)
    assert list(report.table.index) == ["text", "fused"]
    want = float(np.mean(base.predict(TEXT, verbose=0).argmax(-1) == LABELS))
    assert report.table.loc["text", "accuracy"] == pytest.approx(want)


def test_export_takes_strings_and_rest_payload_round_trip(tmp_path):
    base = text_classifier("tf_idf")
    model = kfuse.stack([kfuse.Branch(base, name="t", inputs="text", trainable=False)], head=2)
    path = kfuse.export.export_saved_model(model, str(tmp_path / "m"))
    inputs = kfuse.export.inspect(path)["1"]["serving_default"]["inputs"]
    assert inputs == {"text": {"dtype": "string", "shape": [None]}}
    rows = TEXT[:4]
    payloads = []
    for fmt in ("instances", "inputs"):
        body = kfuse.export.rest_payload({"text": rows}, format=fmt, signature=path)
        payloads.append(str(tmp_path / f"{fmt}.json"))
        with open(payloads[-1], "w") as f:
            json.dump(body, f)  # plain JSON strings
    assert json.load(open(payloads[0]))["instances"][0] == {"text": rows[0]}
    np.savez(tmp_path / "inputs.npz", text=rows.astype(str))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)
    served = subprocess.run(
        [sys.executable, SERVE_CHECK, path, str(tmp_path / "inputs.npz"), str(tmp_path), *payloads],
        env=env, capture_output=True, text=True, timeout=240, cwd=str(tmp_path),
    )  # fmt: skip
    assert served.returncode == 0, served.stdout[-2000:] + served.stderr[-3000:]
    logits = model.predict({"text": rows}, verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "served.npz")["logits"], logits, atol=1e-5)
    for fmt in ("instances", "inputs"):
        with open(tmp_path / f"{fmt}.response.json") as f:
            answer = kfuse.export.parse_response(f.read())
        np.testing.assert_allclose(answer["logits"], logits, atol=1e-5)
    # the base itself: the branch computes what it computes
    np.testing.assert_allclose(
        model.branch_outputs({"text": rows})["t"], base.predict(rows, verbose=0), atol=1e-5
    )


def test_fit_head_on_strings_and_per_class_metrics():
    bases = {"m": text_classifier(), "c": text_classifier("count")}
    for base in bases.values():
        base.compile("adam", "sparse_categorical_crossentropy")
        base.fit(TEXT, LABELS, epochs=2, verbose=0)
    model = kfuse.stack(
        [kfuse.Branch(b, name=n, inputs="x", trainable=False, output="probabilities") for n, b in bases.items()],
        head=2, optimizer=keras.optimizers.Adam(0.05),
    )  # fmt: skip
    before = model.predict({"x": TEXT}, verbose=0)
    model.fit_head({"x": TEXT}, LABELS, epochs=3, batch_size=8, seed=0, verbose=0)  # numpy object array
    after = model.predict({"x": TEXT}, verbose=0)
    assert after.shape == (len(TEXT), 2) and not np.allclose(before, after)
    report = kfuse.compare({"m": bases["m"], "fused": model}, {"x": TEXT}, LABELS, n_boot=20)
    table = report.per_class()
    assert list(table.columns) == ["precision", "recall", "f1", "support"]
    assert list(table.index) == [("m", 0), ("m", 1), ("fused", 0), ("fused", 1)]
    pred = after.argmax(-1)
    for k in (0, 1):  # against a numpy count of true / predicted positives
        tp = np.sum((pred == k) & (LABELS == k))
        row = table.loc[("fused", k)]
        assert row["support"] == np.sum(LABELS == k)
        assert row["recall"] == pytest.approx(tp / np.sum(LABELS == k))
        assert row["precision"] == pytest.approx(tp / max(np.sum(pred == k), 1))
    regression = kfuse.compare({"r": np.array([0.5, 1.0])}, y=np.array([0.4, 1.2]), task="regression")
    with pytest.raises(ValueError, match="classification"):
        regression.per_class()


def test_padded_tf_idf_vocabulary_smaller_than_max_tokens_copies():
    # pad_to_max_tokens=True stores idf weights padded to max_tokens; the copy must keep
    # the output width and values (the branch once failed: "idf_weights must be the same
    # length as vocabulary")
    vectorize = keras.layers.TextVectorization(max_tokens=500, output_mode="tf_idf", pad_to_max_tokens=True)
    vectorize.adapt(TEXT)
    assert len(vectorize.get_vocabulary()) < 500
    inp = keras.Input(shape=(), dtype="string", name="text")
    base = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(vectorize(inp)))
    model = kfuse.stack([kfuse.Branch(base, name="t", inputs="text", trainable=False)], head=2)
    got = model.branch_outputs({"text": TEXT})["t"]
    np.testing.assert_allclose(got, base.predict(TEXT, verbose=0), atol=1e-6)
    trained = kfuse.Branch(base, name="t", inputs="text", fit={"epochs": 1}, readapt=True)
    stacker = kfuse.Stacker([trained], head=2, cv=KFold(2), refit=False, verbose=0, meta_fit={"epochs": 1})
    assert stacker.fit({"text": TEXT}, LABELS).predict_proba({"text": TEXT}).shape == (len(TEXT), 2)
