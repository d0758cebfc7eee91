"""`kfuse --help` and the `kfuse` commands print no TensorFlow start-up lines (oneDNN,
cpu_feature_guard, absl): real processes, started as the console script starts them
(`sys.argv[0]` ending in `kfuse`) and as `python -m kfuse.cli`."""

import os
import subprocess
import sys

import pytest

from kfuse.utils.console import is_kfuse_command

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOISE = ("oneDNN", "cpu_feature_guard", "absl", "This TensorFlow binary")
# what the `kfuse` console script that pip writes does, with this checkout's kfuse
CONSOLE_SCRIPT = "import sys; sys.argv[0] = '/venv/bin/kfuse'; from kfuse.cli import main; sys.exit(main())"


def _run(args):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    env["PYTHONPATH"] = ROOT
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)


def _noise(done):
    return [line for line in (done.stdout + done.stderr).splitlines() if any(n in line for n in NOISE)]


def test_is_kfuse_command():
    assert is_kfuse_command(["/venv/bin/kfuse", "--help"], ["/venv/bin/python", "/venv/bin/kfuse"])
    assert is_kfuse_command(["-m"], ["python", "-m", "kfuse.cli", "--help"])
    assert not is_kfuse_command(["train.py"], ["python", "train.py"])
    assert not is_kfuse_command(["-c"], ["python", "-c", "import kfuse"])
    assert not is_kfuse_command(["-m"], ["python", "-m", "pytest", "kfuse.cli"])


@pytest.mark.slow
def test_kfuse_help_prints_only_its_help():
    done = _run(["-c", CONSOLE_SCRIPT, "--help"])
    assert done.returncode == 0, done.stderr
    assert _noise(done) == [], done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith("usage: kfuse ")
    assert all(command in done.stdout for command in ("demo", "report", "tune", "export", "inspect", "merge"))


@pytest.mark.slow
def test_a_command_run_as_module_prints_only_its_one_line(tmp_path):
    done = _run(["-m", "kfuse.cli", "merge", str(tmp_path / "missing.yaml")])
    assert done.returncode == 2
    assert _noise(done) == [], done.stderr
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("kfuse merge: "), done.stderr
