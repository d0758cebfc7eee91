"""`kfuse report`: saved .keras models + data (mnist1d or .npz) -> one HTML file."""

import keras
import numpy as np

import kfuse
from kfuse.cli import main


def _saved(tmp_path, name, width, seed, input_name="x"):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((width,), name=input_name)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(inp), name=name)
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    return model, path


def test_report_on_npz_with_members(tmp_path, rng, capsys):
    x = rng.normal(size=(60, 6)).astype("float32")
    y = rng.integers(0, 3, 60)
    np.savez(tmp_path / "data.npz", x_test=x, y_test=y)
    a, path_a = _saved(tmp_path, "a", 6, 1)
    b, path_b = _saved(tmp_path, "b", 6, 2)
    fused = kfuse.stack([kfuse.Branch(a, name="ba", inputs="x"), kfuse.Branch(b, name="bb", inputs="x")],
                        fusion="average", head=3)
    fused.save(tmp_path / "fused.keras")
    out = tmp_path / "report.html"
    code = main(["report", str(tmp_path / "fused.keras"), "--data", str(tmp_path / "data.npz"),
                 "--members", path_a, path_b, "--out", str(out), "--markdown", str(tmp_path / "r.md")])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    html = out.read_text()
    assert html.count("data:image/png;base64,") == 5  # roc, confusion, reliability, diversity, contributions
    expected = np.mean(a.predict(x, verbose=0).argmax(1) == y)
    assert f"| a | {expected:.4f}" in (tmp_path / "r.md").read_text()
    assert "Significance ('fused' vs each member)" in (tmp_path / "r.md").read_text()


def test_report_on_mnist1d(tmp_path, mnist1d, capsys):
    from kfuse.demo import build_mlp

    path = str(tmp_path / "mlp.keras")
    build_mlp().save(path)
    assert main(["report", path, "--data", "mnist1d", "--out", str(tmp_path / "m.html")]) == 0
    assert "| mlp |" in capsys.readouterr().out
    assert "not applicable" in (tmp_path / "m.html").read_text()


def test_report_errors_are_clear(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing.keras"), "--data", "mnist1d"]) == 2
    assert "no such model file" in capsys.readouterr().err
    _, path = _saved(tmp_path, "m", 6, 0)
    np.savez(tmp_path / "bad.npz", inputs=np.zeros((3, 6)))
    assert main(["report", path, "--data", str(tmp_path / "bad.npz")]) == 2
    assert "no labels" in capsys.readouterr().err
