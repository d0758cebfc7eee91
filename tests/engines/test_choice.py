"""Choosing the engine (joblib.parallel_config, `kfuse.engines.use`), refusing what cannot
run on one, and a killed driver resuming from its work_dir on local processes."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import joblib
import keras
import numpy as np
import pytest

import kfuse
from kfuse.engines import active_engine, use
from tests import engines as helpers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_engine_follows_joblib_parallel_config():
    assert active_engine() is None  # the estimator's own threads, as before
    with joblib.parallel_config(backend="threading", n_jobs=2):
        assert active_engine() is None
    with joblib.parallel_config(backend="loky", n_jobs=2):
        engine = active_engine()
        assert (engine.kind, engine.n_jobs, engine.workers()) == ("processes", 2, 2)
    with use("processes", n_jobs=3):
        assert active_engine().workers() == 3


def test_an_unknown_engine_gets_the_closest_name():
    with pytest.raises(ValueError, match=r"unknown engine 'rey'\. Did you mean 'ray'\?"):
        use("rey")


@pytest.mark.parametrize("kind, module, command", [
    ("ray", "ray", r'pip install "kfuse\[ray\]"'), ("dask", "distributed", r'pip install "kfuse\[dask\]"')])
def test_an_engine_not_installed_names_its_install_command(monkeypatch, kind, module, command):
    monkeypatch.setitem(sys.modules, module, None)  # as where it is not installed
    with pytest.raises(ImportError, match=rf"the '{kind}' engine is not installed here .*{command}"):
        use(kind)


def test_a_builder_that_cannot_be_shipped_is_refused_naming_the_branch():
    lock = threading.Lock()

    def locked(t):
        with lock:
            return keras.layers.Dense(4)(t)

    x, y = helpers.data()
    stacker = helpers.stacker([kfuse.Branch(locked, name="locked", inputs={"x": (8,)}, fit=helpers.SETTINGS)])
    with joblib.parallel_config(backend="loky", n_jobs=2), pytest.raises(
            TypeError, match=r"branch 'locked' \(fold 1\) cannot be shipped to a worker process .*lock.*"
                             r"Pass a top-level function"):
        stacker.fit({"x": x}, y)


def test_a_builder_using_a_live_model_is_refused_with_what_to_pass():
    trained = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    x, y = helpers.data()
    stacker = helpers.stacker([kfuse.Branch(lambda t: trained(t), name="live", inputs={"x": (8,)})])
    with joblib.parallel_config(backend="loky", n_jobs=2), pytest.raises(
            TypeError, match=r"branch 'live' .*uses the live Keras model or layer \['trained'\].*"
                             r"Pass the model itself"):
        stacker.fit({"x": x}, y)
    bag = kfuse.ensemble.BaggingClassifier(lambda: trained, n_estimators=2)
    with joblib.parallel_config(backend="loky", n_jobs=2), pytest.raises(
            TypeError, match=r"BaggingClassifier: member_0: .*\['trained'\]"):
        bag.fit(x, y)


DRIVER = textwrap.dedent("""
    import sys, joblib
    sys.path.insert(0, {root!r})
    from tests import engines as helpers
    import kfuse
    x, y = helpers.data()
    slow = {{**helpers.SETTINGS, "callbacks": [helpers.Pause({pause!r})]}}
    branches = [kfuse.Branch(helpers.wide_net, name="quick", inputs={{"x": (8,)}}, fit=helpers.SETTINGS),
                kfuse.Branch(helpers.wide_net, name="slow", inputs={{"x": (8,)}}, fit=slow)]
    with joblib.parallel_config(backend="loky", n_jobs=2):
        stacker = helpers.stacker(branches, refit=False, work_dir={work!r}).fit({{"x": x}}, y)
    print("PROBA", stacker.predict_proba({{"x": x}}).sum())
""")


@pytest.mark.slow
def test_a_killed_driver_resumes_without_refitting_finished_jobs(tmp_path):
    work, pause = tmp_path / "work", tmp_path / "pause"
    pause.mkdir()
    script = DRIVER.format(root=ROOT, pause=str(pause), work=str(work))
    driver = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    quick = [work / f"fold_{k}" / "quick.npz" for k in (0, 1)]
    deadline = time.time() + 300
    while not all(f.exists() for f in quick) and time.time() < deadline and driver.poll() is None:
        time.sleep(0.1)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and its worker processes, mid-run
    driver.wait()
    assert all(f.exists() for f in quick), "the quick base's folds did not finish"
    assert not (work / "fold_0" / "slow.npz").exists()  # the slow base was mid-fold
    before = {f: f.stat().st_mtime_ns for f in work.rglob("quick.*")}
    (pause / "go").touch()
    resumed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert "PROBA" in resumed.stdout, resumed.stderr[-2000:]
    assert {f: f.stat().st_mtime_ns for f in work.rglob("quick.*")} == before  # not trained again
    assert all((work / f"fold_{k}" / "slow.npz").exists() for k in (0, 1))
    assert np.isclose(float(resumed.stdout.split("PROBA")[1]), 90.0, atol=1e-3)  # 90 rows of probabilities
