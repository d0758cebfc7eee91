"""Stateful Keras preprocessing survives a branch: `stack` (frozen and trainable), the
`.keras` round trip, the SavedModel served in a fresh TensorFlow-only process, and the
`Stacker`'s fold clones (kept by default, re-adapted on the fold's rows on request)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from sklearn.model_selection import KFold

import kfuse
from tests.conftest import requires_tensorflow

pytestmark = requires_tensorflow()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKERS = os.path.join(ROOT, "tests", "workers")

WORDS = "the cat sat on a mat dog ran far away big small red blue".split()
_rng = np.random.default_rng(0)
TEXT = np.array(
    [" ".join(_rng.choice(WORDS, size=_rng.integers(2, 7))) for _ in range(24)], dtype=object
)
NUM = _rng.normal(3.0, 5.0, size=(24, 4)).astype("float32")
INTS = _rng.integers(0, 12, size=(24, 3)).astype("int64")
TOKENS = np.array(list(_rng.choice(WORDS + ["unseen"], size=24)), dtype=object)


def _text(mode, length=None):
    layer = keras.layers.TextVectorization(output_mode=mode, output_sequence_length=length)
    layer.adapt(TEXT)
    inp = keras.Input((), dtype="string", name="x")
    h = layer(inp)
    if mode == "int":
        h = keras.layers.Embedding(40, 3)(h)
        h = keras.layers.GlobalAveragePooling1D()(h)
    return inp, h


def _adapted(layer, data):
    layer.adapt(data)
    return layer


def make_base(case):
    """(base model, its input rows) for one preprocessing case."""
    if case.startswith("text_"):
        mode = case[len("text_") :]
        length = None
        if mode == "int_seq":
            mode, length = "int", 5
        inp, h = _text(mode, length)
        x = TEXT
    elif case == "normalization":
        inp = keras.Input((4,), name="x")
        h = _adapted(keras.layers.Normalization(), NUM)(inp)
        x = NUM
    elif case == "string_lookup":
        inp = keras.Input((), dtype="string", name="x")
        h = _adapted(keras.layers.StringLookup(output_mode="one_hot"), np.array(WORDS))(inp)
        x = TOKENS
    elif case == "integer_lookup":
        inp = keras.Input((3,), dtype="int64", name="x")
        h = _adapted(keras.layers.IntegerLookup(output_mode="multi_hot"), INTS[:12])(inp)
        x = INTS
    elif case == "discretization":
        inp = keras.Input((4,), name="x")
        h = _adapted(keras.layers.Discretization(num_bins=4), NUM)(inp)
        h = keras.layers.CategoryEncoding(num_tokens=4, output_mode="count")(h)
        x = NUM
    elif case == "category_encoding":
        inp = keras.Input((3,), dtype="int64", name="x")
        h = keras.layers.CategoryEncoding(num_tokens=12, output_mode="multi_hot")(inp)
        x = INTS
    elif case == "hashing":
        inp = keras.Input((), dtype="string", name="x")
        h = keras.layers.Hashing(num_bins=7, salt=3)(inp)
        h = keras.layers.CategoryEncoding(num_tokens=7, output_mode="one_hot")(h)
        x = TOKENS
    elif case == "nested":
        norm = _adapted(keras.layers.Normalization(), NUM)
        prep = keras.Sequential([keras.Input((4,)), norm], name="prep")
        inp = keras.Input((4,), name="x")
        h = prep(inp)
        x = NUM
    out = keras.layers.Dense(2, name="out")(h)
    return keras.Model(inp, out, name=f"base_{case}"), x


CASES = [
    "normalization", "text_int", "text_int_seq", "text_multi_hot", "text_count", "text_tf_idf",
    "string_lookup", "integer_lookup", "discretization", "category_encoding", "hashing", "nested",
]  # fmt: skip


FROM_FILE = ("normalization", "text_int", "text_tf_idf", "integer_lookup", "nested")


def _servable(x):
    return x.astype(str) if x.dtype == object else x


@pytest.fixture(scope="module")
def fused(tmp_path_factory):
    """Every case as one branch of ONE fused model (input `x_<case>`), saved to `.keras`,
    exported, and served in a fresh process that imports only TensorFlow."""
    root = tmp_path_factory.mktemp("prep_exports")
    keras.utils.set_random_seed(0)
    bases, xs = {}, {}
    for case in CASES:
        bases[case], xs[f"x_{case}"] = make_base(case)
    branches = [kfuse.Branch(bases[c], name=c, inputs=f"x_{c}", trainable=False) for c in CASES]
    model = kfuse.stack(branches, fusion="concat")
    model.save(str(root / "fused.keras"))
    reloaded = keras.saving.load_model(str(root / "fused.keras"))
    path = kfuse.export.export_saved_model(model, str(root / "export"))
    np.savez(root / "inputs.npz", **{k: _servable(v) for k, v in xs.items()})
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)
    served = subprocess.run(
        [sys.executable, os.path.join(WORKERS, "serve_check.py"), path, str(root / "inputs.npz"), str(root)],
        env=env, capture_output=True, text=True, timeout=300, cwd=str(root),
    )  # fmt: skip
    assert served.returncode == 0, served.stdout[-2000:] + served.stderr[-3000:]
    assert json.loads(served.stdout.split("RESULT ", 1)[1])["kfuse_imported"] is False
    outputs = np.load(root / "served.npz")
    return {
        "bases": bases,
        "x": xs,
        "in_memory": model.predict(xs, verbose=0),
        "reloaded": reloaded.predict(xs, verbose=0),
        "served": outputs[list(outputs.keys())[0]],
        "signature": kfuse.export.inspect(path)["1"]["serving_default"]["inputs"],
    }


@pytest.mark.parametrize("case", CASES)
def test_branch_keras_file_and_saved_model_equal_the_base(case, tmp_path, fused):
    base, x = make_base(case)
    expected = base.predict(x, verbose=0)
    for trainable in (False, True):
        model = kfuse.stack(
            [kfuse.Branch(base, name="b", inputs="x", trainable=trainable)], fusion=None
        )
        got = model.predict(x, verbose=0)
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=f"trainable={trainable}")
    if case in FROM_FILE:  # a branch over the base's .keras file computes the same
        base.save(str(tmp_path / "base.keras"))
        from_file = kfuse.stack(
            [kfuse.Branch(str(tmp_path / "base.keras"), name="b", inputs="x")], fusion=None
        )
        np.testing.assert_allclose(from_file.predict(x, verbose=0), expected, atol=1e-5)
    # in the fused model: in memory, reloaded from .keras, served from the SavedModel
    i = CASES.index(case)
    own = fused["bases"][case].predict(fused["x"][f"x_{case}"], verbose=0)
    for where in ("in_memory", "reloaded", "served"):
        np.testing.assert_allclose(
            fused[where][:, 2 * i : 2 * i + 2], own, atol=1e-5, err_msg=where
        )
    dtype = fused["signature"][f"x_{case}"]["dtype"]
    assert dtype == ("string" if x.dtype == object else str(x.dtype))


def _norm_mean(model):
    layer = next(layer for layer in model.layers if isinstance(layer, keras.layers.Normalization))
    return np.asarray(layer.mean).reshape(-1)


@pytest.mark.parametrize("readapt", [False, True])
def test_stacker_fold_clones_keep_or_readapt_the_statistics(readapt):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=40)
    x = (rng.normal(size=(40, 4)) * 10 + 50 + y[:, None] * 30).astype("float32")
    norm = keras.layers.Normalization()
    norm.adapt(x)
    base = keras.Sequential(
        [keras.Input((4,), name="x"), norm, keras.layers.Dense(2, activation="softmax")]
    )
    branch = kfuse.Branch(
        base,
        name="b",
        inputs="x",
        readapt=readapt,
        fit={"epochs": 30, "batch_size": 8, "learning_rate": 0.05},
    )
    splitter = KFold(2)
    stacker = kfuse.Stacker(
        [branch], head=2, cv=splitter, refit=False, verbose=0, meta_fit={"epochs": 2}
    )
    stacker.fit(x, y)
    for model, (train_rows, _) in zip(stacker.fold_models_["b"], splitter.split(x), strict=True):
        want = x[train_rows].mean(0) if readapt else x.mean(0)
        np.testing.assert_allclose(_norm_mean(model), want, rtol=1e-4)
    # normalised inputs train: each fold model separates the two classes
    assert min(stacker.cv_scores_["b"]) >= 0.8, stacker.cv_scores_


def test_stacker_text_branch_folds_keep_the_vocabulary():
    rng = np.random.default_rng(2)
    y = np.array([int("cat" in t) for t in TEXT])
    base, _ = make_base("text_multi_hot")
    head = keras.layers.Dense(2, activation="softmax")(base.output)
    base = keras.Model(base.input, head)
    branch = kfuse.Branch(base, name="t", inputs="x", fit={"epochs": 2})
    stacker = kfuse.Stacker(
        [branch], head=2, cv=KFold(2), refit=False, verbose=0, meta_fit={"epochs": 1}
    )
    stacker.fit(TEXT, y)
    vocab = base.get_layer(index=1).get_vocabulary()
    for model in stacker.fold_models_["t"]:
        assert model.get_layer(index=1).get_vocabulary() == vocab
    assert stacker.predict_proba(TEXT).shape == (len(TEXT), 2)
    assert rng is not None


def test_readapt_refuses_a_vocabulary_that_changes_the_output_width():
    base, _ = make_base("text_multi_hot")
    branch = kfuse.Branch(base, name="t", inputs="x", readapt=True)
    fold = branch.fresh_base()
    with pytest.raises(ValueError, match="pad_to_max_tokens=True"):
        kfuse.branches.branch.readapt_preprocessing(fold, TEXT[:3], where="Branch 't'")


def test_self_check_measures_branch_against_base():
    base, x = make_base("normalization")
    model = kfuse.stack([kfuse.Branch(base, name="b", inputs="x", trainable=False)], head=2)
    assert kfuse.branches.branch.branch_base_differences(model, {"b": base}, {"x": x})["b"] < 1e-5
    dense = model.get_layer("b").get_layer("out")
    dense.set_weights([w + 1.0 for w in dense.get_weights()])  # the copy drifts from its base
    assert kfuse.branches.branch.branch_base_differences(model, {"b": base}, {"x": x})["b"] > 1.0
