"""Exports under real processes: two at once get distinct versions, and a process killed
(SIGKILL) at any point of an overwrite leaves `base/1` holding a complete model, old or
new, with its staging directory cleaned by the next export."""

import os
import signal
import subprocess
import sys
import threading
import time

import keras
import pytest

import kfuse
from tests.conftest import requires_tensorflow

pytestmark = requires_tensorflow()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "tests", "workers", "export_worker.py")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)


def start(go, *steps):
    """A worker running `steps` ((mode, base, width), ...) once `go` exists."""
    args = [sys.executable, WORKER, str(go) if go else "-", *(f"{m}:{b}:{w}" for m, b, w in steps)]
    return subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(proc, word, timeout=180):
    """Read the worker's lines until one starts with `word`; return that line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"worker ended before {word!r}: {proc.stderr.read()[-2000:]}")
        if line.startswith(word):
            return line.strip()
    raise AssertionError(f"worker did not print {word!r} in {timeout}s")


def output_width(version_dir):
    outputs = kfuse.export.signatures(version_dir)["serving_default"]["outputs"]
    return next(iter(outputs.values()))["shape"][1]


def complete(version_dir):
    return os.path.isfile(os.path.join(version_dir, "saved_model.pb")) and os.path.isfile(
        os.path.join(version_dir, "variables", "variables.index"))


def _first(tmp_path, name, width=2):
    x = keras.Input((3,), name="x")
    old = keras.Model(x, keras.layers.Dense(width, name="out")(x))
    base = tmp_path / name
    kfuse.export.export_saved_model(old, str(base))
    return base


def test_concurrent_exports_and_overwrites_killed_at_every_stage(tmp_path):
    """Two workers export to one base at the same instant (distinct versions, neither
    lost); then each is killed at a point of an overwrite: with the new model written but
    not swapped in, right after the swap, between the two renames of the fallback, and at
    a random instant of a loop of overwrites watched without pause."""
    shared, go = tmp_path / "shared", tmp_path / "go"
    stages = {"staged": 4, "swapped": 4, "aside": 4, "loop": 3}
    bases = {stage: _first(tmp_path, stage) for stage in stages}
    workers = {
        "staged": start(go, ("next", shared, 3), ("staged", bases["staged"], 4)),
        "swapped": start(go, ("next", shared, 5), ("swapped", bases["swapped"], 4)),
        "aside": start(None, ("aside", bases["aside"], 4)),
        "loop": start(None, ("loop", bases["loop"], 3)),
    }
    missing = []

    def watch(stop):  # `loop` overwrites base/1 again and again: it must never be absent
        while not stop.is_set():
            if not complete(str(bases["loop"] / "1")):
                missing.append(time.monotonic())
            time.sleep(0.0005)

    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(stop,), daemon=True)
    watcher.start()
    try:
        for stage in ("staged", "swapped"):
            wait_for(workers[stage], "ready")
        go.touch()  # both export to `shared` now
        paths = [wait_for(workers[stage], "path").split(" ", 1)[1] for stage in ("staged", "swapped")]
        for stage, worker in workers.items():
            if stage == "loop":
                wait_for(worker, "done 3")  # three overwrites done; kill it mid-way through more
                time.sleep(0.35)
            else:
                wait_for(worker, stage)
            worker.send_signal(signal.SIGKILL)
            worker.wait(30)
    finally:
        stop.set()
        watcher.join(5)
        for worker in workers.values():
            if worker.poll() is None:
                worker.kill()
    assert sorted(paths) == [str(shared / "1"), str(shared / "2")]
    assert sorted(os.listdir(shared)) == ["1", "2"]  # no staging left
    assert sorted(output_width(p) for p in paths) == [3, 5]  # neither model was lost
    assert missing == [], "base/1 was absent or incomplete while an overwrite ran"
    for stage in ("staged", "swapped", "loop"):
        assert complete(str(bases[stage] / "1")), stage
    assert output_width(str(bases["staged"] / "1")) == 2  # killed before the swap: old model
    assert output_width(str(bases["swapped"] / "1")) == 4  # killed after it: the new one
    assert output_width(str(bases["loop"] / "1")) in (3, 4)
    # the fallback (no renameat2) has one gap between its renames; the next export closes it
    assert not os.path.exists(bases["aside"] / "1")
    for stage, base in bases.items():
        if stage != "loop":
            assert [d for d in os.listdir(base) if d.startswith(".")], stage  # the killed one's
        path = kfuse.export.export_saved_model(keras.Model(*_io()), str(base))
        assert path == str(base / "2")
        assert sorted(os.listdir(base)) == ["1", "2"], (stage, os.listdir(base))  # stale staging cleaned
    assert output_width(str(bases["aside"] / "1")) == 2  # the old model, put back
    assert kfuse.export.latest(str(bases["loop"])) == str(bases["loop"] / "2")


def _io():
    x = keras.Input((3,), name="x")
    return x, keras.layers.Dense(7)(x)


@pytest.mark.parametrize("leftover", [".1.partial-oldstyle", ".3.old-oldstyle"])
def test_old_style_staging_is_cleaned_once_stale(tmp_path, leftover):
    base = tmp_path / "m"
    (base / leftover / "model").mkdir(parents=True)
    old = time.time() - 2 * 3600
    os.utime(base / leftover, (old, old))
    kfuse.export.export_saved_model(keras.Model(*_io()), str(base))
    assert os.listdir(base) == ["1"]
