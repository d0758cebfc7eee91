"""`kfuse tune config.yaml`: config checks (each bad input named) and one real run."""

import os

import keras
import numpy as np
import pytest
import yaml

from kfuse.cli import main
from kfuse.tuning.config import check_config, load_config


@pytest.fixture
def saved_bases(bases, tmp_path):
    paths = []
    for model in bases:
        path = str(tmp_path / f"{model.name}.keras")
        model.save(path)
        paths.append(path)
    return paths


def write(tmp_path, config, name="tune.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return str(path)


def config_for(paths, tmp_path, **overrides):
    if not (tmp_path / "data.npz").exists():
        np.savez(tmp_path / "data.npz", x=np.zeros((4, 40), "float32"), y=np.zeros(4, "int64"))
    config = {
        "branches": [{"path": paths[0], "name": "mlp", "output": "probabilities"},
                     {"path": paths[1], "name": "cnn", "output": "probabilities"}],
        "data": {"source": str(tmp_path / "data.npz")},
        "head": 10,
        "space": {"fusions": ["concat", "weighted_average"], "finetune": 0, "meta_depth": [0, 1],
                  "learning_rate": {"min": 1e-3, "max": 1e-2, "sampling": "log"}},
        "tuner": {"type": "random", "max_trials": 2, "seed": 0, "directory": str(tmp_path / "runs")},
        "fit": {"epochs": 1, "batch_size": 64},
        "export": {"dir": str(tmp_path / "saved_models"), "name": "tuned"},
    }
    config.update(overrides)
    return config


@pytest.mark.parametrize(
    "where, bad, match",
    [
        (None, {"tunner": {}}, r"unknown key\(s\) \['tunner'\].*did you mean 'tuner'"),
        ("tuner", {"max_trial": 3}, r"tuner: unknown key\(s\) \['max_trial'\]"),
        ("space", {"fusion": "concat"}, r"space: unknown key\(s\) \['fusion'\].*'fusions'"),
        ("fit", {"epoch": 1, "lr": 0.1}, r"fit: unknown key\(s\) \['epoch', 'lr'\]"),
        ("export", {"path": "x"}, r"export: unknown key\(s\) \['path'\]"),
    ],
)
def test_unknown_keys_are_named(saved_bases, tmp_path, where, bad, match):
    config = config_for(saved_bases, tmp_path)
    if where is None:
        config.update(bad)
    else:
        config[where].update(bad)
    with pytest.raises(ValueError, match=match):
        load_config(write(tmp_path, config))


def test_unknown_branch_key_is_named(saved_bases, tmp_path):
    config = config_for(saved_bases, tmp_path)
    config["branches"][1]["ouput"] = "logits"
    with pytest.raises(ValueError, match=r"branches\[1\]: unknown key\(s\) \['ouput'\].*'output'"):
        check_config(config)


def test_missing_branch_file_is_reported_before_anything_runs(saved_bases, tmp_path):
    config = config_for(saved_bases, tmp_path)
    config["branches"][0]["path"] = str(tmp_path / "gone.keras")
    with pytest.raises(ValueError, match=r"branches\[0\] path .*gone.keras.* does not exist"):
        check_config(config)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"data": "imagenet"}, "data source 'imagenet' must be 'mnist1d' or an existing .npz"),
        ({"tuner": {"type": "grid"}}, "tuner.type 'grid' is not one of"),
        ({"branches": []}, "non-empty list"),
        ({"space": {"learning_rate": {"min": 1e-3}}}, "range needs `min` and `max`"),
    ],
)
def test_other_bad_configs(saved_bases, tmp_path, change, match):
    config = config_for(saved_bases, tmp_path, **change)
    with pytest.raises(ValueError, match=match):
        check_config(config)


def test_cli_reports_a_bad_config_and_exits_2(saved_bases, tmp_path, capsys):
    config = config_for(saved_bases, tmp_path, budget=3)
    assert main(["tune", write(tmp_path, config)]) == 2
    assert "unknown key(s) ['budget']" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_searches_and_exports_the_best_model(saved_bases, data, tmp_path, capsys):
    (x, y), (xv, yv) = data["train"], data["val"]
    np.savez(tmp_path / "data.npz", x=x[:400], y=y[:400], x_val=xv, y_val=yv)
    config = config_for(saved_bases, tmp_path)
    assert main(["tune", write(tmp_path, config), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert '"trials": 2' in out and '"best_trial"' in out
    exported = tmp_path / "saved_models" / "tuned" / "1"
    assert (exported / "saved_model.pb").exists()
    model = keras.saving.load_model(str(tmp_path / "saved_models" / "tuned.keras"))
    assert model.branch_names and set(model.branch_names) <= {"mlp", "cnn"}
    assert model.predict(xv[:4], verbose=0).shape == (4, 10)


def test_example_config_is_valid_apart_from_its_bases():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "tune_mnist1d.yaml")
    with open(path) as f:
        config = yaml.safe_load(f)
    with pytest.raises(ValueError, match="mnist1d_cnn.keras.* does not exist") if not os.path.exists(
        config["branches"][0]["path"]
    ) else _nothing():
        check_config(config)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
