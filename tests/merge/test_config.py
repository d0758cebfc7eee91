"""mergekit-style YAML configs through kfuse.merge.config.main (the `kfuse merge` command)."""

import keras
import numpy as np
import pytest

from kfuse.merge.config import main


@pytest.fixture
def files(tmp_path):
    for name in ("base", "a", "b"):
        keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)]).save(
            tmp_path / f"{name}.keras")
    return tmp_path


def _yaml(folder, text):
    path = folder / "merge.yaml"
    path.write_text(text)
    return str(path)


def test_ties_yaml_writes_keras_file(files, capsys):
    cfg = _yaml(files, """
merge_method: ties
base_model: base.keras
models:
  - model: a.keras
    parameters: {weight: 1.0, density: 0.5}
  - model: b.keras
    parameters: {weight: 0.5, density: [0.3, 0.9]}
parameters: {lambda: 0.8}
dtype: float64
output: out.keras
""")
    assert main([cfg]) == 0
    assert "wrote" in capsys.readouterr().out
    from kfuse.merge import merge

    model = keras.saving.load_model(str(files / "out.keras"), safe_mode=True)
    expected = merge([str(files / "a.keras"), str(files / "b.keras")], "ties",
                     base=str(files / "base.keras"), dtype="float64",
                     model_parameters=[{"weight": 1.0, "density": 0.5},
                                       {"weight": 0.5, "density": [0.3, 0.9]}],
                     **{"lambda": 0.8})
    for u, v in zip(model.get_weights(), expected.get_weights(), strict=False):
        np.testing.assert_allclose(u, v)
    assert main([cfg, "-o", str(files / "other.keras")]) == 0
    assert (files / "other.keras").exists()


@pytest.mark.parametrize("text, message", [
    ("merge_method: tie\nmodels: [a.keras]\noutput: o.keras\n", "did you mean 'ties'"),
    ("merge_method: linear\nmodels: [a.keras, missing.keras]\noutput: o.keras\n",
     "missing.keras' does not exist"),
    ("merge_method: linear\nmodel: [a.keras]\n", "unknown key 'model'.*did you mean 'models'"),
    ("merge_method: linear\nmodels: [{model: a.keras, weight: 1}]\noutput: o.keras\n",
     r"models\[0\]: unknown key 'weight'"),
    ("merge_method: slerp\nmodels: [a.keras, b.keras]\nparameters: {t: 2}\noutput: o.keras\n",
     r"'t' must be in \[0, 1\]"),
    ("merge_method: ties\nmodels: [a.keras, b.keras]\noutput: o.keras\n", "needs base="),
    ("merge_method: ties\nbase_model: base.keras\nmodels:\n - {model: a.keras, parameters: "
     "{density: 1.5}}\noutput: o.keras\n", r"'density' must be in \(0, 1\]"),
    ("merge_method: linear\nmodels: [a.keras]\ndtype: int8\noutput: o.keras\n", "dtype must be"),
    ("merge_method: linear\nmodels: [a.keras]\n", "no output path"),
    ("merge_method: [\n", "not valid YAML"),
])
def test_bad_configs_one_line_errors(files, capsys, text, message):
    assert main([_yaml(files, text)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("kfuse merge: error:")
    import re

    assert re.search(message, err), err


def test_lambda_model_refused(files, capsys):
    inp = keras.Input((3,))
    keras.Model(inp, keras.layers.Lambda(lambda t: t + 1)(inp)).save(files / "lam.keras")
    assert main([_yaml(files, "merge_method: linear\nmodels: [lam.keras, lam.keras]\n"
                               "output: o.keras\n")]) == 2
    assert "Lambda layer" in capsys.readouterr().err


def test_kfuse_merge_subcommand_writes_and_reports_one_line(files, capsys):
    from kfuse.cli import main as kfuse_main

    cfg = _yaml(files, "merge_method: linear\nmodels: [a.keras, b.keras]\noutput: soup.keras\n")
    assert kfuse_main(["merge", cfg]) == 0
    soup = keras.saving.load_model(str(files / "soup.keras"), safe_mode=True)
    a = keras.saving.load_model(str(files / "a.keras"))
    b = keras.saving.load_model(str(files / "b.keras"))
    for u, v, w in zip(soup.get_weights(), a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(u, (v + w) / 2, rtol=1e-6)
    capsys.readouterr()
    bad = _yaml(files, "merge_method: tie\nmodels: [a.keras]\noutput: o.keras\n")
    assert kfuse_main(["merge", bad]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kfuse merge: ") and "did you mean 'ties'" in err and "\n" not in err
