"""Data-aware merges from a YAML config and the ``kfuse merge`` CLI: the ``data`` key (per
model or for all, .npy / .npz files), the output equal to the in-memory merge, and the
errors of a config whose data is missing, misplaced or does not fit the models."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from kfuse.merge import merge
from kfuse.merge.config import ConfigError, load_config, main, run_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _net():
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                             keras.layers.Dense(2)])


@pytest.fixture
def folder(tmp_path):
    """Two tiny models (and a base) saved as .keras, and input rows as .npy / .npz files."""
    for i, name in enumerate(("base", "a", "b")):
        keras.utils.set_random_seed(i)
        _net().save(tmp_path / f"{name}.keras")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "rows_a.npy", rng.normal(size=(40, 3)).astype("float32"))
    np.savez(tmp_path / "rows_b.npz", x=2 * rng.normal(size=(30, 3)).astype("float32"),
             y=np.zeros(30))
    np.save(tmp_path / "wide.npy", np.zeros((10, 5), "float32"))
    np.savez(tmp_path / "two.npz", rows=np.zeros((4, 3)), other=np.zeros(4))
    return tmp_path


def _write(folder, text):
    path = folder / "merge.yaml"
    path.write_text(text)
    return str(path)


def _load(path):
    return keras.saving.load_model(path, compile=False)


def _assert_same_weights(a, b):
    for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(u, v, atol=1e-6)


def test_regmean_per_model_data_equals_in_memory_merge(folder):
    path = _write(folder, "merge_method: regmean\nmodels:\n"
                          "  - {model: a.keras, data: rows_a.npy}\n"
                          "  - {model: b.keras, data: rows_b.npz}\n"
                          "parameters: {alpha: 0.8}\noutput: out/merged.keras\n")
    (folder / "out").mkdir()
    out = run_config(path)
    assert out == str(folder / "out" / "merged.keras")
    assert os.listdir(folder / "out") == ["merged.keras"]  # no temporary file left
    rows = [np.load(folder / "rows_a.npy"), np.load(folder / "rows_b.npz")["x"]]
    expected = merge([_load(str(folder / "a.keras")), _load(str(folder / "b.keras"))],
                     "regmean", data=rows, alpha=0.8)
    merged = _load(out)
    _assert_same_weights(merged, expected)
    # RegMean is not the plain average: the data mattered
    average = merge([str(folder / "a.keras"), str(folder / "b.keras")], "linear")
    assert not np.allclose(merged.get_weights()[0], average.get_weights()[0], atol=1e-3)


def test_fisher_top_level_data_serves_every_model(folder):
    path = _write(folder, "merge_method: fisher\ndata: rows_a.npy\n"
                          "models: [a.keras, b.keras]\noutput: fisher.keras\n")
    config = load_config(path)
    assert config["data"] == [str(folder / "rows_a.npy")] * 2
    run_config(path)
    rows = np.load(folder / "rows_a.npy")
    expected = merge([str(folder / "a.keras"), str(folder / "b.keras")], "fisher", data=rows)
    _assert_same_weights(_load(str(folder / "fisher.keras")), expected)


def test_model_data_overrides_top_level_and_adamerging_uses_base(folder):
    path = _write(folder, "merge_method: adamerging\nbase_model: base.keras\ndata: rows_a.npy\n"
                          "models:\n  - a.keras\n  - {model: b.keras, data: rows_b.npz}\n"
                          "parameters: {steps: 3, granularity: task}\noutput: ada.keras\n")
    assert load_config(path)["data"] == [str(folder / "rows_a.npy"), str(folder / "rows_b.npz")]
    run_config(path)
    rows = [np.load(folder / "rows_a.npy"), np.load(folder / "rows_b.npz")["x"]]
    expected = merge([str(folder / "a.keras"), str(folder / "b.keras")], "adamerging",
                     base=str(folder / "base.keras"), data=rows, steps=3, granularity="task")
    _assert_same_weights(_load(str(folder / "ada.keras")), expected)


@pytest.mark.parametrize("text, message", [
    ("merge_method: regmean\nmodels: [a.keras, b.keras]\n",
     "merge_method 'regmean' learns from data but models[0] has none; add 'data: rows.npy'"),
    ("merge_method: fisher\nmodels:\n  - {model: a.keras, data: rows_a.npy}\n  - b.keras\n",
     "models[1] has none; add 'data:' to it or a top-level 'data:'"),
    ("merge_method: linear\ndata: rows_a.npy\nmodels: [a.keras, b.keras]\n",
     "data is set but merge_method 'linear' reads weights only"),
    ("merge_method: ties\nbase_model: base.keras\nmodels:\n  - {model: a.keras, data: "
     "rows_a.npy}\n  - b.keras\n", "models[0].data is set but merge_method 'ties'"),
    ("merge_method: regmean\ndata: missing.npy\nmodels: [a.keras, b.keras]\n",
     "data file"),
    ("merge_method: regmean\ndata: rows.csv\nmodels: [a.keras, b.keras]\n",
     "must be a .npy or .npz file"),
    ("merge_method: regmen\ndata: rows_a.npy\nmodels: [a.keras, b.keras]\n",
     "did you mean 'regmean'?"),
    ("merge_method: regmean\nmodels:\n  - {model: a.keras, dat: rows_a.npy}\n",
     "unknown key 'dat'"),
])
def test_config_data_errors_at_load(folder, text, message):
    with pytest.raises(ConfigError) as caught:
        load_config(_write(folder, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("text, message", [
    ("merge_method: regmean\nmodels:\n  - {model: a.keras, data: rows_a.npy}\n"
     "  - {model: b.keras, data: wide.npy}\n",
     "data file '{f}/wide.npy' has rows of shape (5,); models[1] takes inputs of shape (3,)"),
    ("merge_method: regmean\ndata: two.npz\nmodels: [a.keras, b.keras]\n",
     "holds arrays ['rows', 'other']; name the input rows 'x'"),
    ("merge_method: adamerging\ndata: rows_a.npy\nmodels: [a.keras, b.keras]\n",
     "adamerging needs base="),
    ("merge_method: regmean\ndata: rows_a.npy\nmodels: [a.keras, b.keras]\n"
     "parameters: {alfa: 0.5}\n", "alfa"),
])
def test_config_data_errors_at_merge_leave_no_output(folder, text, message):
    path = _write(folder, text + "output: never.keras\n")
    with pytest.raises(ConfigError) as caught:
        run_config(path)
    assert message.format(f=folder) in str(caught.value)
    assert not [f for f in os.listdir(folder) if f.endswith(".keras") and f not in
                ("base.keras", "a.keras", "b.keras")]


def test_main_reports_missing_data_in_one_line(folder, capsys):
    assert main([_write(folder, "merge_method: zipit\nmodels: [a.keras, b.keras]\n"
                                "output: z.keras\n")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kfuse merge: error:") and "'zipit' learns from data" in err
    assert len(err.splitlines()) == 1


@pytest.mark.slow  # a new Python process imports TensorFlow
def test_kfuse_merge_cli_process_runs_regmean(folder):
    path = _write(folder, "merge_method: regmean\nmodels:\n"
                          "  - {model: a.keras, data: rows_a.npy}\n"
                          "  - {model: b.keras, data: rows_b.npz}\n")
    out = str(folder / "cli.keras")
    done = subprocess.run([sys.executable, "-m", "kfuse.cli", "merge", path, "-o", out],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"kfuse merge: wrote {out}" in done.stdout
    rows = [np.load(folder / "rows_a.npy"), np.load(folder / "rows_b.npz")["x"]]
    expected = merge([str(folder / "a.keras"), str(folder / "b.keras")], "regmean", data=rows)
    _assert_same_weights(_load(out), expected)
