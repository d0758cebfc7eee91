"""SavedModel export for TF Serving: layout, named signatures, a fresh TF-only process,
saved_model_cli, the REST payload round trip, the CLI, and every bad input."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import kfuse
from tests.conftest import requires_tensorflow

pytestmark = requires_tensorflow()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVE_CHECK = os.path.join(ROOT, "tests", "workers", "serve_check.py")


def make_stack(head=3):
    base = keras.Sequential(
        [keras.Input((8,), name="x"), keras.layers.Dense(6, activation="relu"), keras.layers.Dense(3)],
        name="base",
    )
    other = keras.Sequential([keras.Input((4,), name="z"), keras.layers.Dense(3)], name="other")
    return kfuse.stack(
        [
            kfuse.Branch(base, name="a", inputs="x"),
            kfuse.Branch(other, name="b", inputs="z"),
            kfuse.Branch(lambda t: keras.layers.Dense(5)(t), name="c", inputs="x"),
        ],
        fusion="concat",
        meta=(8,),
        head=head,
    )


def data(n=6):
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(n, 8)).astype("float32"), "z": rng.normal(size=(n, 4)).astype("float32")}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = make_stack()
    base_dir = str(tmp_path_factory.mktemp("exports") / "stack")
    path = kfuse.export.export_saved_model(model, base_dir, branch_outputs=True)
    return model, base_dir, path


def test_layout_versions_and_named_signatures(exported, tmp_path):
    model, base_dir, path = exported
    assert path == os.path.join(base_dir, "1")
    assert sorted(os.listdir(base_dir)) == ["1"]  # no temporary sibling left behind
    info = kfuse.export.inspect(base_dir)
    assert list(info) == ["1"]
    serving = info["1"]["serving_default"]
    assert serving["inputs"] == {
        "x": {"dtype": "float32", "shape": [None, 8]},
        "z": {"dtype": "float32", "shape": [None, 4]},
    }
    assert sorted(serving["outputs"]) == ["logits", "prediction", "probabilities"]
    assert serving["outputs"]["prediction"] == {"dtype": "int64", "shape": [None]}
    branches = info["1"]["branch_outputs"]["outputs"]
    assert {k: v["shape"] for k, v in branches.items()} == {"a": [None, 3], "b": [None, 3], "c": [None, 5]}
    # in-process check against the Keras model
    assert kfuse.export.verify(model, base_dir, data()) <= 1e-5


def test_next_version_overwrite_and_existing_version(tmp_path):
    model = make_stack()
    base = str(tmp_path / "m")
    assert kfuse.export.export_saved_model(model, base).endswith(os.sep + "1")
    assert kfuse.export.export_saved_model(model, base).endswith(os.sep + "2")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        kfuse.export.export_saved_model(model, base, version=2)
    with pytest.raises(ValueError, match="exists"):  # also a ValueError
        kfuse.export.export_saved_model(model, base, version=1)
    keras.utils.set_random_seed(5)
    changed = make_stack()
    kfuse.export.export_saved_model(changed, base, version=1, overwrite=True)
    assert kfuse.export.existing_versions(base) == [1, 2]
    assert kfuse.export.verify(changed, os.path.join(base, "1"), data()) <= 1e-5
    assert sorted(os.listdir(base)) == ["1", "2"]


def test_crash_mid_write_leaves_no_version_directory(tmp_path, monkeypatch):
    model = make_stack()
    base = tmp_path / "m"

    def crash(*args):
        raise KeyboardInterrupt("simulated crash after the SavedModel was written")

    monkeypatch.setattr(kfuse.export.versions, "publish", crash)
    with pytest.raises(KeyboardInterrupt):
        kfuse.export.export_saved_model(model, str(base))
    assert kfuse.export.existing_versions(str(base)) == []
    assert os.listdir(base) == []
    monkeypatch.undo()
    # what a killed process leaves (a hidden partial directory) is never a version
    (base / ".1.partial-killed").mkdir()
    assert kfuse.export.existing_versions(str(base)) == []
    assert kfuse.export.export_saved_model(model, str(base)).endswith(os.sep + "1")


def test_bad_exports_raise_clear_errors(tmp_path):
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not built"):
        kfuse.export.export_saved_model(unbuilt, str(tmp_path / "u"))
    unnamed = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="auto-generated name"):
        kfuse.export.export_saved_model(unnamed, str(tmp_path / "n"))
    with pytest.raises(TypeError, match="keras.Model"):
        kfuse.export.export_saved_model("model.keras", str(tmp_path / "s"))
    a_file = tmp_path / "file"
    a_file.write_text("not a directory")
    model = keras.Sequential([keras.Input((3,), name="x"), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="is a file"):
        kfuse.export.export_saved_model(model, str(a_file))
    for version in (0, -1, "2", 1.5, True):
        with pytest.raises(ValueError, match="positive int"):
            kfuse.export.export_saved_model(model, str(tmp_path / "v"), version=version)
    with pytest.raises(ValueError, match="kfuse.FusedModel"):
        kfuse.export.export_saved_model(model, str(tmp_path / "b"), branch_outputs=True)
    with pytest.raises(ValueError, match="no SavedModel"):
        kfuse.export.inspect(str(tmp_path))


def test_plain_keras_model_keeps_output_layer_names(tmp_path):
    inp = keras.Input((3,), name="features")
    out = keras.layers.Dense(2, name="score")(inp)
    path = kfuse.export.export_saved_model(keras.Model(inp, out), str(tmp_path / "p"))
    sig = kfuse.export.inspect(path)["1"]["serving_default"]
    assert list(sig["inputs"]) == ["features"] and list(sig["outputs"]) == ["score"]


def test_regression_and_binary_heads_name_their_outputs(tmp_path):
    base = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(3)])
    for head, names in ((kfuse.layers.heads.Regression(2), ["prediction"]),
                        (kfuse.layers.heads.Binary(), ["logits", "prediction", "probabilities"])):
        model = kfuse.stack([kfuse.Branch(base, name="a")], fusion=None, head=head)
        path = kfuse.export.export_saved_model(model, str(tmp_path / type(head).__name__))
        assert sorted(kfuse.export.inspect(path)["1"]["serving_default"]["outputs"]) == names


def test_rest_payload_formats_and_mismatches(exported):
    model, base_dir, _ = exported
    x = data(3)
    rows = kfuse.export.rest_payload(x, signature=base_dir)
    assert rows["signature_name"] == "serving_default"
    assert len(rows["instances"]) == 3 and sorted(rows["instances"][0]) == ["x", "z"]
    np.testing.assert_allclose(rows["instances"][1]["z"], x["z"][1])
    cols = kfuse.export.rest_payload(x, format="inputs", signature=model)
    assert np.asarray(cols["inputs"]["x"]).shape == (3, 8)
    json.dumps(rows), json.dumps(cols)  # plain JSON
    with pytest.raises(ValueError, match=r"missing \['z'\]"):
        kfuse.export.rest_payload({"x": x["x"]}, signature=base_dir)
    with pytest.raises(ValueError, match=r"unexpected \['w'\]"):
        kfuse.export.rest_payload({**x, "w": x["x"]}, signature=base_dir)
    with pytest.raises(ValueError, match=r"input 'x' has shape \(3, 7\).*\(batch, 8\)"):
        kfuse.export.rest_payload({"x": x["x"][:, :7], "z": x["z"]}, signature=base_dir)
    with pytest.raises(ValueError, match="same batch size"):
        kfuse.export.rest_payload({"x": x["x"], "z": x["z"][:2]})
    with pytest.raises(ValueError, match="'instances' or 'inputs'"):
        kfuse.export.rest_payload(x, format="rows")
    with pytest.raises(ValueError, match="no signature 'nope'"):
        kfuse.export.rest_payload(x, signature=base_dir, signature_name="nope")


def test_parse_response_reads_both_layouts():
    rows = {"predictions": [{"logits": [1.0, 2.0], "prediction": 1}, {"logits": [3.0, 0.0], "prediction": 0}]}
    parsed = kfuse.export.parse_response(json.dumps(rows))
    np.testing.assert_array_equal(parsed["prediction"], [1, 0])
    assert parsed["logits"].shape == (2, 2)
    np.testing.assert_array_equal(kfuse.export.parse_response({"outputs": [[1.0], [2.0]]}), [[1.0], [2.0]])
    assert kfuse.export.parse_response(b'{"outputs": {"a": [1]}}')["a"].tolist() == [1]
    with pytest.raises(RuntimeError, match="Servable not found"):
        kfuse.export.parse_response({"error": "Servable not found for request"})
    with pytest.raises(ValueError, match="'predictions' or 'outputs'"):
        kfuse.export.parse_response({"result": 1})


@pytest.mark.slow
def test_fresh_tensorflow_process_and_saved_model_cli(exported, tmp_path):
    """The export loads where only TensorFlow is imported (no kfuse, no keras import),
    `serving_default` matches Keras within 1e-5, the REST payloads round-trip, and
    saved_model_cli lists the named inputs and outputs."""
    model, base_dir, path = exported
    x = data(5)
    np.savez(tmp_path / "inputs.npz", **x)
    payloads = []
    for fmt in ("instances", "inputs"):
        body = kfuse.export.rest_payload({k: v[:3] for k, v in x.items()}, format=fmt, signature=path)
        payloads.append(str(tmp_path / f"{fmt}.json"))
        with open(payloads[-1], "w") as f:
            json.dump(body, f)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    cli_command = [cli] if os.path.exists(cli) else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    show = subprocess.Popen([*cli_command, "show", "--dir", path, "--all"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    serve = subprocess.run([sys.executable, SERVE_CHECK, path, str(tmp_path / "inputs.npz"), str(tmp_path), *payloads],
                           env=env, capture_output=True, text=True, timeout=240, cwd=str(tmp_path))
    cli_text = show.communicate(timeout=240)[0]
    assert serve.returncode == 0, serve.stdout[-2000:] + serve.stderr[-3000:]
    report = json.loads(serve.stdout.split("RESULT ", 1)[1])
    assert report["signatures"] == ["branch_outputs", "serving_default"]
    assert report["kfuse_imported"] is False

    served = np.load(tmp_path / "served.npz")
    logits = model.predict(x, verbose=0)
    np.testing.assert_allclose(served["logits"], logits, atol=1e-5)
    np.testing.assert_allclose(served["probabilities"], model.predict_proba(x, verbose=0), atol=1e-5)
    np.testing.assert_array_equal(served["prediction"], logits.argmax(-1))
    for fmt in ("instances", "inputs"):
        with open(tmp_path / f"{fmt}.response.json") as f:
            answer = kfuse.export.parse_response(f.read())
        np.testing.assert_allclose(answer["logits"], logits[:3], atol=1e-5)
        np.testing.assert_array_equal(answer["prediction"], logits[:3].argmax(-1))

    assert show.returncode == 0, cli_text[-3000:]
    for line in ("signature_def['serving_default']", "signature_def['branch_outputs']",
                 "inputs['x'] tensor_info", "inputs['z'] tensor_info",
                 "outputs['logits'] tensor_info", "outputs['probabilities'] tensor_info",
                 "outputs['prediction'] tensor_info", "outputs['a'] tensor_info"):
        assert line in cli_text, cli_text[-3000:]
    assert "output_0" not in cli_text


def test_cli_export_and_inspect(tmp_path, capsys):
    from kfuse.cli import main

    model = make_stack()
    model_path = str(tmp_path / "stack.keras")
    model.save(model_path)
    base = str(tmp_path / "saved_models" / "stack")
    assert main(["export", model_path, base, "--branch-outputs"]) == 0
    out = capsys.readouterr().out
    assert f"-> {os.path.join(base, '1')}" in out and "signature 'branch_outputs'" in out
    assert kfuse.export.verify(model, base, data()) <= 1e-5
    assert main(["export", model_path, base, "--version", "1"]) == 2
    assert "exists; pass overwrite=True" in capsys.readouterr().err
    assert main(["export", model_path, base, "--version", "1", "--overwrite"]) == 0
    capsys.readouterr()
    assert main(["inspect", base]) == 0
    text = capsys.readouterr().out
    assert "version 1" in text and "signature 'serving_default'" in text
    assert any(line.split()[:4] == ["input", "x", "float32", "(None,"] for line in text.splitlines())
    assert any(line.split()[:2] == ["output", "probabilities"] for line in text.splitlines())
    assert main(["inspect", base, "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["1"]["serving_default"]["inputs"]["z"]["shape"] == [None, 4]
    assert main(["export", str(tmp_path / "missing.keras"), base]) == 2
    assert "no such model file" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path)]) == 2
