"""Every `kfuse` subcommand reports a user error as ONE line `kfuse <command>: ...` on
stderr with exit status 2 and no traceback (`--debug` shows it). In-process calls of
`kfuse.cli.main`, plus two real processes."""

import os
import re
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import yaml

from kfuse.cli import main
from tests.conftest import requires_tensorflow

pytestmark = requires_tensorflow()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A saved model, a truncated copy, a non-zip, a zip that is no model, data files."""
    d = tmp_path_factory.mktemp("cli")
    x = keras.Input((4,), name="signal")
    model = keras.Model(x, keras.layers.Dense(3, name="probabilities")(x), name="m")
    model.save(d / "m.keras")
    data = (d / "m.keras").read_bytes()
    (d / "cut.keras").write_bytes(data[: len(data) // 2])
    (d / "text.keras").write_text("not a model")
    with zipfile.ZipFile(d / "zip.keras", "w") as archive:
        archive.writestr("readme.txt", "no config here")
    lam = keras.Input((4,), name="signal")
    keras.Model(lam, keras.layers.Lambda(lambda t: t * 2)(lam)).save(d / "lambda.keras")
    np.savez(d / "data.npz", x=np.zeros((6, 4), "float32"), y=np.arange(6) % 3)
    np.savez(d / "nolabels.npz", inputs=np.zeros((3, 4)))
    (d / "cut.npz").write_bytes((d / "data.npz").read_bytes()[:40])
    (d / "empty").mkdir()
    main(["export", str(d / "m.keras"), str(d / "exp")])  # exp/1
    return d


def tune_file(files, name, **changes):
    config = {"branches": [{"path": str(files / "m.keras"), "name": "m"}],
              "data": {"source": str(files / "data.npz")}, "head": 3,
              "tuner": {"max_trials": 1, "directory": str(files / "runs")}, "fit": {"epochs": 1}}
    for section, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(section), dict):
            config[section] = {**config[section], **value}
        else:
            config[section] = value
    path = files / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


CASES = [
    ("inspect", lambda f: ["inspect", str(f / "nothing")], "does not exist"),
    ("inspect", lambda f: ["inspect", str(f / "empty")], "holds no SavedModel and no integer version"),
    ("export", lambda f: ["export", str(f / "missing.keras"), str(f / "o")], "no such model file"),
    ("export", lambda f: ["export", str(f / "cut.keras"), str(f / "o")], "cut.keras' is damaged or not a .keras file"),
    ("export", lambda f: ["export", str(f / "text.keras"), str(f / "o")], "Save the model again with model.save(path)"),
    ("export", lambda f: ["export", str(f / "zip.keras"), str(f / "o")], "zip.keras' could not be loaded: it is damaged"),
    ("export", lambda f: ["export", str(f / "m.keras"), str(f / "o"), "--version", "0"], "positive int; received 0"),
    ("export", lambda f: ["export", str(f / "m.keras"), str(f / "exp"), "--version", "1"], "exists; pass overwrite=True"),
    ("export", lambda f: ["export", str(f / "m.keras"), str(f / "data.npz")], "is a file; TF Serving needs a directory"),
    ("tune", lambda f: ["tune", str(f / "none.yaml")], "No such config file"),
    ("tune", lambda f: ["tune", tune_file(f, "epochs", fit={"epochs": "one"})], "fit.epochs must be a whole number >= 1; received 'one'"),
    ("tune", lambda f: ["tune", tune_file(f, "trials", tuner={"max_trials": "many"})], "tuner.max_trials must be a whole number"),
    ("tune", lambda f: ["tune", tune_file(f, "rows", data={"rows": "all"})], "data.rows must be a whole number >= 1; received 'all'"),
    ("tune", lambda f: ["tune", tune_file(f, "head", head="three")], "head must be the number of classes"),
    ("tune", lambda f: ["tune", tune_file(f, "fusion", space={"fusions": ["concat", "gatted"]})], "unknown fusion 'gatted' (did you mean 'gated'?)"),
    ("tune", lambda f: ["tune", tune_file(f, "key", fit={"epoch": 1})], "unknown key(s) ['epoch']"),
    ("tune", lambda f: ["tune", tune_file(f, "lambda", branches=[{"path": str(f / "lambda.keras"), "name": "lam"}])], "lambda.keras"),
    ("report", lambda f: ["report", str(f / "missing.keras"), "--data", "mnist1d"], "no such model file"),
    ("report", lambda f: ["report", str(f / "cut.keras"), "--data", str(f / "data.npz")], "is damaged or not a .keras file"),
    ("report", lambda f: ["report", str(f / "m.keras"), "--data", str(f / "none.npz")], "--data"),
    ("report", lambda f: ["report", str(f / "m.keras"), "--data", str(f / "cut.npz")], "is damaged or not an .npz file"),
    ("report", lambda f: ["report", str(f / "m.keras"), "--data", str(f / "nolabels.npz")], "no labels"),
]


@pytest.mark.parametrize("command, argv, words", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_user_errors_are_one_line_with_exit_status_2(files, capsys, command, argv, words):
    code = main(argv(files))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"kfuse {command}: "), err
    assert words in lines[0] and "Traceback" not in err


def test_yaml_syntax_error_names_the_line(files, capsys):
    path = files / "syntax.yaml"
    path.write_text("branches: [a\n  data: mnist1d\n")
    assert main(["tune", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kfuse tune: ") and "YAML syntax error at line 2" in err and "\n" not in err


@pytest.mark.parametrize("argv", [["--debug", "inspect", "NOWHERE"], ["inspect", "NOWHERE", "--debug"]])
def test_debug_shows_the_traceback(argv):
    with pytest.raises(ValueError, match="does not exist"):
        main(argv)


def test_usage_errors_and_no_command(files, capsys):
    with pytest.raises(SystemExit) as info:
        main(["export", str(files / "m.keras"), "o", "--version", "abc"])
    assert info.value.code == 2 and "invalid int value: 'abc'" in capsys.readouterr().err
    assert main([]) == 2


def test_incomplete_versions_are_listed_by_inspect(files, capsys):
    (files / "exp" / "7").mkdir()
    try:
        assert main(["inspect", str(files / "exp")]) == 0
        out = capsys.readouterr().out
        assert "version 1" in out and "version 7  INCOMPLETE: " in out and "TF Serving would try" in out
    finally:
        (files / "exp" / "7").rmdir()


_TF_RUNTIME_LOG = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\) is called|[IWEF]\d{4} )")


def test_real_process_prints_one_line_and_exits_2(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-m", "kfuse.cli", "export", "NOWHERE.keras", "out"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 2, done.stderr
    # TensorFlow's C++ runtime may log at import before TF_CPP_MIN_LOG_LEVEL applies (absl
    # lines such as "I0000 ... port.cc:153] oneDNN custom operations are on", which depend
    # on the CPU); those lines are TensorFlow's, every other line must be kfuse's one line
    ours = [line for line in done.stderr.splitlines() if line.strip() and not _TF_RUNTIME_LOG.match(line)]
    assert ours == ["kfuse export: 'NOWHERE.keras': no such model file (expected a .keras file)"], done.stderr
